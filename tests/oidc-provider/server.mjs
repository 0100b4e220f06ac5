#!/usr/bin/env node
// Test-only OpenID provider for Ward's integration tests.
//
// A real, certified OpenID Provider (npm `oidc-provider`) configured for Ward,
// plus a small set of test-only admin routes under /__test/ that exist ONLY in
// this harness (see README.md). Never deploy this.
//
// Usage: node tests/oidc-provider/server.mjs [--port 0] [--issuer-host 127.0.0.1]
//          [--keys FILE] [--alg RS256[,EdDSA,ES256]] [--rotate] [--retire-old]
//          [--client-id ward-cli] [--audience ward] [--resource URI]
//          [--ttl-access 600] [--ttl-id 600] [--users FILE]
//
// stdout carries exactly one line: `oidc-provider listening on <issuer>`.
// Everything else (oidc-provider notices, logs) goes to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

// oidc-provider prints NOTICEs with console.info (stdout). Keep stdout for the
// single "listening" line only, so route every console method to stderr before
// the library is loaded.
for (const m of ['log', 'info', 'debug']) {
  console[m] = (...args) => console.error(...args);
}

// ---------------------------------------------------------------- options ---

const USAGE = `usage: node server.mjs [options]
  --port N             TCP port, 0 = pick a free one (default 0)
  --issuer-host HOST   loopback address to bind and to put in the issuer (default 127.0.0.1)
  --keys FILE          JWKS (private keys) to sign with; first key signs, the others are
                       only published. Created with fresh keys if missing.
                       (default: a temporary file, fresh keys each start)
  --alg LIST           algs for keys generated when FILE is missing or on --rotate:
                       comma list of RS256, ES256, EdDSA (default RS256)
  --rotate             prepend a freshly generated key (first alg of --alg, or the
                       current signing key's alg if --alg is absent) to FILE, keep the rest
  --retire-old         keep only the first key of FILE (after --rotate, if given)
  --client-id ID       the public client (default ward-cli)
  --audience AUD       aud of JWT access tokens (default ward)
  --resource URI       RFC 8707 resource indicator mapped to AUD; must be an absolute URI
                       (default: AUD if it is an absolute URI, else urn:AUD)
  --ttl-access SECS    access token lifetime (default 600)
  --ttl-id SECS        ID token lifetime (default 600)
  --users FILE         optional JSON array of users to preload (same shape as POST /__test/users)
  --help`;

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'issuer-host': { type: 'string', default: '127.0.0.1' },
      keys: { type: 'string' },
      alg: { type: 'string' },
      rotate: { type: 'boolean', default: false },
      'retire-old': { type: 'boolean', default: false },
      'client-id': { type: 'string', default: 'ward-cli' },
      audience: { type: 'string', default: 'ward' },
      resource: { type: 'string' },
      'ttl-access': { type: 'string', default: '600' },
      'ttl-id': { type: 'string', default: '600' },
      users: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  console.error(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  console.error(USAGE);
  process.exit(0);
}

function intOpt(name) {
  const v = Number(opts[name]);
  if (!Number.isInteger(v)) {
    console.error(`--${name} must be an integer, got ${opts[name]}`);
    process.exit(2);
  }
  return v;
}

const PORT = intOpt('port');
const HOST = opts['issuer-host'];
const CLIENT_ID = opts['client-id'];
const AUDIENCE = opts.audience;
const TTL_ACCESS = intOpt('ttl-access');
const TTL_ID = intOpt('ttl-id');
if (TTL_ACCESS <= 0 || TTL_ID <= 0) {
  console.error('--ttl-access and --ttl-id must be positive (use POST /__test/tokens for expired tokens)');
  process.exit(2);
}
const isAbsoluteUri = (s) => { try { return !!new URL(s).protocol; } catch { return false; } };
const RESOURCE = opts.resource ?? (isAbsoluteUri(AUDIENCE) ? AUDIENCE : `urn:${AUDIENCE}`);
if (!isAbsoluteUri(RESOURCE)) {
  console.error(`--resource must be an absolute URI, got ${RESOURCE}`);
  process.exit(2);
}
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
if (!LOOPBACK_HOSTS.has(HOST) && !HOST.startsWith('127.')) {
  console.error(`--issuer-host must be a loopback address (this harness has unauthenticated admin routes), got ${HOST}`);
  process.exit(2);
}

// ------------------------------------------------------------------- keys ---

const ALG_FOR = (jwk) => {
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
};

function generateKey(alg) {
  let pair;
  switch (alg) {
    case 'RS256': pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }); break;
    case 'ES256': pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }); break;
    case 'EdDSA': pair = crypto.generateKeyPairSync('ed25519'); break;
    default: throw new Error(`unsupported --alg ${alg} (use RS256, ES256 or EdDSA)`);
  }
  const jwk = pair.privateKey.export({ format: 'jwk' });
  return normalizeKey(jwk);
}

function thumbprint(jwk) {
  const req = {
    RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'],
  }[jwk.kty];
  const obj = Object.fromEntries(req.map((k) => [k, jwk[k]]));
  return crypto.createHash('sha256').update(JSON.stringify(obj)).digest('base64url');
}

function normalizeKey(jwk) {
  const alg = ALG_FOR(jwk);
  if (!alg) throw new Error(`unsupported key kty=${jwk.kty} crv=${jwk.crv} (need RSA, EC P-256 or OKP Ed25519)`);
  if (jwk.alg && jwk.alg !== alg && !(alg === 'EdDSA' && jwk.alg === 'Ed25519')) {
    throw new Error(`key ${jwk.kid ?? ''} has alg ${jwk.alg}; this harness signs ${jwk.kty} keys with ${alg}`);
  }
  if (!jwk.d) throw new Error(`key ${jwk.kid ?? ''} has no private part ("d")`);
  return { ...jwk, alg: jwk.alg ?? alg, use: 'sig', kid: jwk.kid ?? thumbprint(jwk) };
}

const algList = (opts.alg ?? 'RS256').split(',').map((s) => s.trim()).filter(Boolean);

function loadKeys() {
  let file = opts.keys;
  if (!file) {
    file = path.join(fs.mkdtempSync(path.join((process.env.TMPDIR || '/tmp'), 'ward-oidc-')), 'jwks.json');
  }
  let keys;
  let dirty = false;
  if (fs.existsSync(file)) {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    keys = (Array.isArray(parsed) ? parsed : parsed.keys ?? []).map(normalizeKey);
    if (!keys.length) throw new Error(`${file} holds no keys`);
  } else {
    keys = algList.map(generateKey);
    dirty = true;
  }
  if (opts.rotate) {
    const alg = opts.alg ? algList[0] : keys[0].alg === 'Ed25519' ? 'EdDSA' : keys[0].alg;
    keys = [generateKey(alg), ...keys];
    dirty = true;
  }
  if (opts['retire-old'] && keys.length > 1) {
    keys = [keys[0]];
    dirty = true;
  }
  const kids = new Set();
  for (const k of keys) {
    if (kids.has(k.kid)) throw new Error(`duplicate kid ${k.kid} in ${file}`);
    kids.add(k.kid);
  }
  if (dirty) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
  }
  return { file, keys };
}

let KEYS;
try {
  KEYS = loadKeys();
} catch (err) {
  console.error(`keys: ${err.message}`);
  process.exit(2);
}
const SIGNING_KEY = KEYS.keys[0];
const SIGN_ALG = SIGNING_KEY.alg;

// ----------------------------------------------------------------- accounts --

/** @type {Map<string, {sub:string,email?:string,email_verified?:boolean,name?:string,groups:string[],amr:string[],acr?:string}>} */
const users = new Map();

function validateUser(body) {
  const err = (m) => { const e = new Error(m); e.status = 400; throw e; };
  if (!body || typeof body !== 'object' || Array.isArray(body)) err('body must be a JSON object');
  const { sub } = body;
  if (typeof sub !== 'string' || !sub) err('"sub" must be a non-empty string');
  const groups = body.groups ?? [];
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) err('"groups" must be an array of strings');
  let amr = body.amr ?? (body.mfa ? ['pwd', 'mfa'] : ['pwd']);
  if (!Array.isArray(amr) || amr.some((g) => typeof g !== 'string')) err('"amr" must be an array of strings');
  if (body.email !== undefined && typeof body.email !== 'string') err('"email" must be a string');
  if (body.acr !== undefined && body.acr !== null && typeof body.acr !== 'string') err('"acr" must be a string');
  if (body.name !== undefined && typeof body.name !== 'string') err('"name" must be a string');
  amr = [...amr];
  return {
    sub,
    email: body.email,
    email_verified: body.email === undefined ? undefined : (body.email_verified ?? true),
    name: body.name,
    groups: [...groups],
    amr,
    acr: body.acr ?? undefined,
  };
}

function userClaims(u) {
  return Object.fromEntries(Object.entries({
    sub: u.sub,
    email: u.email,
    email_verified: u.email_verified,
    name: u.name,
    groups: u.groups,
    amr: u.amr,
    acr: u.acr,
  }).filter(([, v]) => v !== undefined));
}

if (opts.users) {
  try {
    for (const u of JSON.parse(fs.readFileSync(opts.users, 'utf8'))) {
      const user = validateUser(u);
      users.set(user.sub, user);
    }
  } catch (err) {
    console.error(`--users: ${err.message}`);
    process.exit(2);
  }
}

// --------------------------------------------------------------- provider ---

const { default: Provider, errors: oidcErrors } = await import('oidc-provider');

const httpServer = http.createServer();
await new Promise((resolve, reject) => {
  httpServer.once('error', reject);
  httpServer.listen(PORT, HOST, resolve);
});
const { port: boundPort } = httpServer.address();
const hostForUrl = HOST.includes(':') && !HOST.startsWith('[') ? `[${HOST}]` : HOST;
const ISSUER = `http://${hostForUrl}:${boundPort}`;

const OIDC_SCOPES = ['openid', 'email', 'groups', 'offline_access'];
const RS_SCOPE = 'openid email groups';

function resourceServerInfo(audience = AUDIENCE) {
  return {
    scope: RS_SCOPE,
    audience,
    accessTokenTTL: TTL_ACCESS,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: SIGN_ALG } },
  };
}

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'Ward CLI (test)',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: [
      'urn:ietf:params:oauth:grant-type:device_code',
      'authorization_code',
      'refresh_token',
    ],
    response_types: ['code'],
    // native + loopback: any port is accepted (RFC 8252 section 7.3)
    redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback', 'http://localhost/callback'],
    id_token_signed_response_alg: SIGN_ALG,
  }],
  clientDefaults: {
    id_token_signed_response_alg: SIGN_ALG,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
  jwks: { keys: KEYS.keys },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
    userinfoSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: OIDC_SCOPES,
  claims: {
    openid: ['sub', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    profile: ['name'],
  },
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const u = users.get(sub);
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() { return userClaims(u); },
    };
  },
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const u = users.get(token.accountId);
    if (!u) return undefined;
    const { sub, ...rest } = userClaims(u); // sub is set by the provider
    return rest;
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      // Plain pages (no external fonts); errors are machine-readable in <pre id="error">.
      userCodeInputSource: async (ctx, form, _out, err) => {
        const msg = err
          ? `<p>The code could not be used.</p><pre id="error">${escapeHtml(JSON.stringify({ error: err.name, message: err.message }))}</pre>`
          : '<p>Enter the code displayed on your device</p>';
        ctx.type = 'html';
        ctx.body = `<!DOCTYPE html><html><head><title>Ward test device sign-in</title></head><body><h1>Device sign-in</h1>${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button></body></html>`;
      },
      userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
        ctx.type = 'html';
        ctx.body = `<!DOCTYPE html><html><head><title>Ward test device sign-in</title></head><body><h1>Confirm device</h1><p><code>${escapeHtml(client.clientName ?? client.clientId)}</code> shows the code <code id="user_code">${escapeHtml(userCode)}</code>.</p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button></body></html>`;
      },
      successSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = '<!DOCTYPE html><html><head><title>Ward test device sign-in</title></head><body><h1 id="success">Sign-in complete</h1><p>You can return to your device.</p></body></html>';
      },
    },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator === RESOURCE) return resourceServerInfo();
        throw new oidcErrors.InvalidTarget(`unknown resource indicator (this provider serves ${RESOURCE})`);
      },
    },
  },
  ttl: {
    AccessToken: TTL_ACCESS,
    IdToken: TTL_ID,
    DeviceCode: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 86400,
  },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><body><h1>oidc error</h1><pre id="error">${escapeHtml(JSON.stringify(out))}</pre></body></html>`;
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// ------------------------------------------------------------- utilities ----

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

async function readBody(req, limit = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limit) { const e = new Error('body too large'); e.status = 413; throw e; }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req) {
  const raw = await readBody(req);
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch {
    const e = new Error('body must be JSON'); e.status = 400; throw e;
  }
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function isLoopbackPeer(req) {
  const a = req.socket.remoteAddress ?? '';
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

const now = () => Math.floor(Date.now() / 1000);

// ------------------------------------------------------- interactions (UI) --
// Real interaction endpoints (the provider redirects the user agent here).
// A person can use them in a browser; /__test/device/approve and
// /__test/authorize drive the very same endpoints over HTTP.

async function grantFor(details, accountId) {
  const { params } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
    if (grant && grant.accountId !== accountId) grant = undefined;
  }
  grant ??= new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  if (params.claims) {
    const c = JSON.parse(params.claims);
    grant.addOIDCClaims([...Object.keys(c.id_token ?? {}), ...Object.keys(c.userinfo ?? {})]);
  }
  const resources = [params.resource ?? RESOURCE].flat();
  for (const r of resources) grant.addResourceScope(r, params.scope ?? '');
  return grant.save();
}

async function handleInteraction(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
  if (!m) return false;
  const action = m[2];
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    sendHtml(res, 400, `<!DOCTYPE html><html><body><h1>interaction error</h1><pre id="error">${escapeHtml(err.message)}</pre></body></html>`);
    return true;
  }
  if (details.uid !== m[1]) {
    sendHtml(res, 400, '<!DOCTYPE html><html><body><pre id="error">interaction mismatch</pre></body></html>');
    return true;
  }

  if (req.method === 'GET' && !action) {
    const list = [...users.keys()].map((s) => `<option value="${escapeHtml(s)}">`).join('');
    sendHtml(res, 200, `<!DOCTYPE html><html><head><title>Ward test sign-in</title></head><body>
<h1>Ward test OpenID provider</h1>
<p>Client <code>${escapeHtml(details.params.client_id)}</code> asks for <code>${escapeHtml(details.params.scope ?? '')}</code> (prompt: ${escapeHtml(details.prompt.name)}).</p>
<form id="login" method="post" action="/interaction/${escapeHtml(details.uid)}/login">
  <label>User (sub) <input name="login" list="users" autofocus></label>
  <datalist id="users">${list}</datalist>
  <button type="submit">Sign in and allow</button>
</form>
<form id="abort" method="post" action="/interaction/${escapeHtml(details.uid)}/abort"><button type="submit">Deny</button></form>
</body></html>`);
    return true;
  }

  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login');
    const u = login && users.get(login);
    if (!u) {
      sendHtml(res, 400, `<!DOCTYPE html><html><body><pre id="error">unknown user ${escapeHtml(login ?? '')}</pre></body></html>`);
      return true;
    }
    const grantId = await grantFor(details, u.sub);
    await provider.interactionFinished(req, res, {
      login: {
        accountId: u.sub, amr: u.amr, ...(u.acr ? { acr: u.acr } : {}), remember: false,
      },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return true;
  }

  if (req.method === 'POST' && action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return true;
  }

  sendHtml(res, 405, '<!DOCTYPE html><html><body>method not allowed</body></html>');
  return true;
}

// ---------------------------------------------- HTTP user agent (for tests) --

class UserAgent {
  constructor() { this.cookies = new Map(); } // name -> {value, path}

  cookieHeader(pathname) {
    const out = [];
    for (const [name, c] of this.cookies) {
      if (pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/') {
        out.push(`${name}=${c.value}`);
      }
    }
    return out.join('; ');
  }

  store(res, reqUrl) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let cpath = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') cpath = v;
        if (k.toLowerCase() === 'expires' && new Date(v).getTime() < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      void reqUrl;
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, { value, path: cpath });
    }
  }

  async request(method, target, form) {
    const u = new URL(target, ISSUER);
    const headers = { cookie: this.cookieHeader(u.pathname) };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(u, { method, headers, body, redirect: 'manual' });
    this.store(res, u);
    const text = await res.text();
    return { status: res.status, location: res.headers.get('location'), text, url: u };
  }
}

const hiddenValue = (html, name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1];
const pageError = (html) => {
  const m = html.match(/<pre id="error">([\s\S]*?)<\/pre>/);
  if (!m) return undefined;
  const txt = m[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
  try { return JSON.parse(txt); } catch { return { error: txt }; }
};

function httpError(status, message, extra) {
  const e = new Error(message); e.status = status; e.extra = extra; return e;
}

// Follows same-origin redirects with the agent's cookies until one of:
// the interaction page (returns {interaction}), a foreign redirect (returns
// {redirect}), or a final page (returns {page}).
async function follow(ua, first, stopAtInteraction = true) {
  let r = first;
  for (let i = 0; i < 10; i += 1) {
    if (r.status >= 300 && r.status < 400 && r.location) {
      const next = new URL(r.location, r.url);
      if (next.origin !== new URL(ISSUER).origin) return { redirect: next.href };
      if (stopAtInteraction && /^\/interaction\/[^/]+$/.test(next.pathname)) {
        return { interaction: next.pathname.split('/')[2], page: await ua.request('GET', next.href) };
      }
      r = await ua.request('GET', next.href);
    } else {
      return { page: r };
    }
  }
  throw httpError(502, 'too many redirects');
}

async function loginAt(ua, uid, user) {
  const r = await ua.request('POST', `/interaction/${uid}/login`, { login: user });
  if (r.status !== 303) throw httpError(502, `login step failed (${r.status})`, pageError(r.text));
  return follow(ua, r, false);
}

async function denyAt(ua, uid) {
  const r = await ua.request('POST', `/interaction/${uid}/abort`, {});
  if (r.status !== 303) throw httpError(502, `deny step failed (${r.status})`, pageError(r.text));
  return follow(ua, r, false);
}

async function approveDevice({ user_code: userCode, user, deny = false }) {
  if (typeof userCode !== 'string' || !userCode) throw httpError(400, '"user_code" must be a non-empty string');
  if (!deny && (typeof user !== 'string' || !users.has(user))) throw httpError(404, `unknown user ${JSON.stringify(user)}; create it with POST /__test/users first`);
  const ua = new UserAgent();
  // 1. the device verification page (what verification_uri shows a person)
  const page = await ua.request('GET', '/device');
  const xsrf = hiddenValue(page.text, 'xsrf');
  if (page.status !== 200 || !xsrf) throw httpError(502, `unexpected verification page (${page.status})`);
  // 2. submit the user code and confirm it (the two forms of the real page)
  const submitted = await ua.request('POST', '/device', { xsrf, user_code: userCode, confirm: 'yes' });
  if (submitted.status !== 303) {
    // NotFoundError / ExpiredError / AlreadyUsedError re-render the input page
    const err = pageError(submitted.text);
    throw httpError(err ? 400 : 502, err ? `user code rejected: ${err.message ?? err.error}` : `unexpected response ${submitted.status}`, err);
  }
  const at = await follow(ua, submitted);
  if (!at.interaction) throw httpError(502, 'provider did not ask for an interaction', at.page && pageError(at.page.text));
  // 3. sign in (and consent) as the user, or deny
  const done = deny ? await denyAt(ua, at.interaction) : await loginAt(ua, at.interaction, user);
  const final = done.page;
  if (!final) throw httpError(502, 'unexpected redirect after login', { redirect: done.redirect });
  const err = pageError(final.text);
  if (deny) {
    if (err?.error !== 'AbortedError') throw httpError(502, 'deny did not complete', err ?? { status: final.status });
    return { status: 'denied' };
  }
  if (final.status !== 200 || err || !final.text.includes('id="success"')) throw httpError(502, 'device flow did not complete', err ?? { status: final.status });
  return { status: 'approved', user };
}

async function driveAuthorize({ url, user, deny = false, deliver = false }) {
  if (typeof url !== 'string') throw httpError(400, '"url" must be the full authorization URL');
  const u = new URL(url, ISSUER);
  if (u.origin !== new URL(ISSUER).origin) throw httpError(400, 'url must point at this provider');
  if (!deny && (typeof user !== 'string' || !users.has(user))) throw httpError(404, `unknown user ${JSON.stringify(user)}`);
  const ua = new UserAgent();
  const first = await follow(ua, await ua.request('GET', u.href));
  let done = first;
  if (first.interaction) done = deny ? await denyAt(ua, first.interaction) : await loginAt(ua, first.interaction, user);
  if (!done.redirect) throw httpError(400, 'authorization did not redirect to the client', done.page && (pageError(done.page.text) ?? { status: done.page.status }));
  const out = { redirect: done.redirect };
  if (deliver) {
    const r = await fetch(done.redirect, { redirect: 'manual' });
    out.delivered_status = r.status;
    await r.arrayBuffer();
  }
  return out;
}

// ------------------------------------------------------------ token minting --

async function mintToken(body) {
  const {
    user, kind = 'access', audience, scope = 'openid email groups',
  } = body ?? {};
  const u = users.get(user);
  if (!u) throw httpError(404, `unknown user ${JSON.stringify(user)}; create it with POST /__test/users first`);
  let ttl = body.ttl ?? body.exp_offset ?? (kind === 'id' ? TTL_ID : TTL_ACCESS);
  if (!Number.isInteger(ttl)) throw httpError(400, '"ttl" (or "exp_offset") must be an integer number of seconds');
  const t = now();
  const exp = t + ttl;
  // A token that is already expired is given a past iat too (issued `lifetime` before exp).
  const iat = body.iat_offset !== undefined ? t + body.iat_offset : (ttl > 0 ? t : exp - (kind === 'id' ? TTL_ID : TTL_ACCESS));
  const client = await provider.Client.find(CLIENT_ID);

  if (kind === 'access') {
    const at = new provider.AccessToken({
      accountId: u.sub,
      client,
      gty: 'urn:ward:test:minted',
      scope,
    });
    at.resourceServer = new provider.ResourceServer(RESOURCE, resourceServerInfo(audience ?? AUDIENCE));
    at.iat = iat;
    at.exp = exp;
    const token = await at.save();
    return { token, kind, exp, iat, kid: SIGNING_KEY.kid, alg: SIGN_ALG };
  }

  if (kind === 'id') {
    if (ttl === 0) throw httpError(400, 'ttl 0 is not supported for ID tokens; use -1');
    let idClient = client;
    if (audience !== undefined && audience !== CLIENT_ID) {
      // A throwaway client object only to put a different `aud` in the token;
      // the token is still signed by the provider's keystore.
      idClient = new provider.Client({
        client_id: String(audience),
        token_endpoint_auth_method: 'none',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        id_token_signed_response_alg: SIGN_ALG,
      });
    }
    const idt = new provider.IdToken({
      ...userClaims(u),
      auth_time: iat,
    }, { client: idClient });
    idt.scope = scope;
    idt.set('iat', iat);
    if (body.nonce) idt.set('nonce', body.nonce);
    // issue() computes exp as now + (expiresAt - now)
    const token = await idt.issue({ use: 'idtoken', expiresAt: exp });
    return { token, kind, exp, iat, kid: SIGNING_KEY.kid, alg: SIGN_ALG };
  }

  throw httpError(400, '"kind" must be "access" or "id"');
}

// --------------------------------------------------------------- admin API --

async function handleAdmin(req, res, url) {
  if (!isLoopbackPeer(req)) {
    sendJson(res, 404, { error: 'not_found' });
    return;
  }
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case 'GET /__test/health':
        sendJson(res, 200, {
          ok: true,
          issuer: ISSUER,
          client_id: CLIENT_ID,
          audience: AUDIENCE,
          resource: RESOURCE,
          signing_kid: SIGNING_KEY.kid,
          signing_alg: SIGN_ALG,
          kids: KEYS.keys.map((k) => k.kid),
          keys_file: path.resolve(KEYS.file),
          users: [...users.keys()],
        });
        return;
      case 'POST /__test/users': {
        const user = validateUser(await readJson(req));
        const replaced = users.has(user.sub);
        users.set(user.sub, user);
        sendJson(res, replaced ? 200 : 201, { user: userClaims(user), replaced });
        return;
      }
      case 'GET /__test/users':
        sendJson(res, 200, { users: [...users.values()].map(userClaims) });
        return;
      case 'POST /__test/tokens':
        sendJson(res, 200, await mintToken(await readJson(req)));
        return;
      case 'POST /__test/device/approve':
        sendJson(res, 200, await approveDevice(await readJson(req)));
        return;
      case 'POST /__test/device/deny': {
        const b = await readJson(req);
        sendJson(res, 200, await approveDevice({ ...b, deny: true }));
        return;
      }
      case 'POST /__test/authorize':
        sendJson(res, 200, await driveAuthorize(await readJson(req)));
        return;
      default: {
        const um = url.pathname.match(/^\/__test\/users\/([^/]+)$/);
        if (um && req.method === 'DELETE') {
          const existed = users.delete(decodeURIComponent(um[1]));
          sendJson(res, existed ? 200 : 404, existed ? { deleted: true } : { error: 'not_found' });
          return;
        }
        sendJson(res, 404, { error: 'not_found', message: `no test route ${route}` });
      }
    }
  } catch (err) {
    const status = err.status ?? 500;
    if (status >= 500) console.error(err);
    sendJson(res, status, { error: status >= 500 ? 'server_error' : status === 404 ? 'not_found' : 'bad_request', message: err.message, ...(err.extra ? { detail: err.extra } : {}) });
  }
}

// ---------------------------------------------------------------- routing ---

const oidcCallback = provider.callback();
httpServer.on('request', async (req, res) => {
  const url = new URL(req.url, ISSUER);
  try {
    if (url.pathname === '/__test' || url.pathname.startsWith('/__test/')) {
      await handleAdmin(req, res, url);
      return;
    }
    if (url.pathname.startsWith('/interaction/') && await handleInteraction(req, res, url)) return;
    oidcCallback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', message: err.message });
    else res.destroy();
  }
});

function shutdown(sig) {
  console.error(`oidc-provider: ${sig}, shutting down`);
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

process.stdout.write(`oidc-provider listening on ${ISSUER}\n`);
