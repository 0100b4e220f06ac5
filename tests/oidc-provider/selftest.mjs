#!/usr/bin/env node
// End-to-end self test of server.mjs: starts real provider processes and
// exercises discovery, JWKS, minted tokens, the device flow, the
// authorization code + PKCE flow and key rotation.
//
//   npm ci --prefix tests/oidc-provider && node tests/oidc-provider/selftest.mjs
//
// Prints node:test style results; exits non-zero on failure.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'server.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ward-oidc-selftest-'));
const running = new Set();

after(async () => {
  for (const p of running) await stop(p);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(args = []) {
  const child = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const issuer = await new Promise((resolve, reject) => {
    const to = setTimeout(() => reject(new Error(`no listening line; stderr: ${err}`)), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^oidc-provider listening on (http:\/\/\S+)\n/);
      if (m) { clearTimeout(to); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(to); reject(new Error(`exited ${code}: ${err}`)); });
  });
  return {
    child, issuer, stdout: () => out, stderr: () => err,
  };
}

async function stop(p) {
  const child = p.child ?? p;
  running.delete(child);
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.kill('SIGTERM');
  });
}

async function admin(issuer, route, body) {
  const res = await fetch(`${issuer}${route}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await res.json();
  return { status: res.status, json };
}

async function form(url, params) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  return { status: res.status, json: await res.json() };
}

const ALICE = {
  sub: 'alice', email: 'alice@example.com', groups: ['ward:acme:admin', 'ward:acme:approver'], amr: ['pwd', 'mfa'], acr: 'urn:ward:acr:mfa',
};
const BOB = { sub: 'bob', email: 'bob@example.com', groups: ['ward:acme:viewer'] };

async function deviceLogin(issuer, user, extra = {}) {
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const da = await form(disc.device_authorization_endpoint, {
    client_id: 'ward-cli', scope: 'openid email groups offline_access', resource: 'urn:ward', ...extra,
  });
  assert.equal(da.status, 200, JSON.stringify(da.json));
  const poll = () => form(disc.token_endpoint, {
    client_id: 'ward-cli', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.json.device_code,
  });
  const pending = await poll();
  assert.equal(pending.status, 400);
  assert.equal(pending.json.error, 'authorization_pending');
  const ap = await admin(issuer, '/__test/device/approve', { user_code: da.json.user_code, user });
  assert.equal(ap.status, 200, JSON.stringify(ap.json));
  const tok = await poll();
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  return { disc, da: da.json, tok: tok.json };
}

let first; // provider #1
const keysFile = path.join(tmp, 'jwks.json');
let oldToken;

test('starts, prints exactly one stdout line, serves discovery and JWKS', async () => {
  first = await start(['--port', '0', '--keys', keysFile]);
  assert.match(first.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  const disc = await (await fetch(`${first.issuer}/.well-known/openid-configuration`)).json();
  assert.equal(disc.issuer, first.issuer);
  assert.equal(disc.device_authorization_endpoint, `${first.issuer}/device/auth`);
  assert.ok(disc.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:device_code'));
  const jwks = await (await fetch(disc.jwks_uri)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].alg, 'RS256');
  assert.equal(jwks.keys[0].d, undefined, 'no private parts published');
  const saved = JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  assert.equal(saved.keys[0].kid, jwks.keys[0].kid);
  assert.ok(saved.keys[0].d, 'keys file holds the private key');
  const h = await admin(first.issuer, '/__test/health');
  assert.equal(h.status, 200);
  assert.equal(h.json.signing_kid, jwks.keys[0].kid);
});

test('users and minted tokens verify against the JWKS', async () => {
  const { issuer } = first;
  assert.equal((await admin(issuer, '/__test/users', ALICE)).status, 201);
  assert.equal((await admin(issuer, '/__test/users', BOB)).status, 201);
  assert.equal((await admin(issuer, '/__test/users', { ...BOB })).status, 200);
  assert.equal((await admin(issuer, '/__test/users', { email: 'x' })).status, 400);
  const JWKS = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));

  const at = await admin(issuer, '/__test/tokens', { user: 'alice', kind: 'access' });
  assert.equal(at.status, 200, JSON.stringify(at.json));
  const { payload, protectedHeader } = await jose.jwtVerify(at.json.token, JWKS, { issuer, audience: 'ward', typ: 'at+jwt' });
  assert.equal(protectedHeader.alg, 'RS256');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.com');
  assert.deepEqual(payload.groups, ALICE.groups);
  assert.deepEqual(payload.amr, ['pwd', 'mfa']);
  assert.equal(payload.acr, 'urn:ward:acr:mfa');
  assert.equal(payload.client_id, 'ward-cli');
  assert.equal(payload.exp - payload.iat, 600);
  oldToken = at.json.token;

  const bobAt = await admin(issuer, '/__test/tokens', { user: 'bob' });
  const bobP = (await jose.jwtVerify(bobAt.json.token, JWKS, { issuer, audience: 'ward' })).payload;
  assert.deepEqual(bobP.amr, ['pwd']);
  assert.equal(bobP.acr, undefined);

  const id = await admin(issuer, '/__test/tokens', { user: 'alice', kind: 'id', nonce: 'n1' });
  const idp = (await jose.jwtVerify(id.json.token, JWKS, { issuer, audience: 'ward-cli' })).payload;
  assert.deepEqual(idp.groups, ALICE.groups);
  assert.equal(idp.email, 'alice@example.com');
  assert.deepEqual(idp.amr, ['pwd', 'mfa']);
  assert.equal(idp.acr, 'urn:ward:acr:mfa');
  assert.equal(idp.nonce, 'n1');

  const expired = await admin(issuer, '/__test/tokens', { user: 'alice', ttl: -60 });
  await assert.rejects(jose.jwtVerify(expired.json.token, JWKS, { issuer, audience: 'ward' }), jose.errors.JWTExpired);
  const expP = jose.decodeJwt(expired.json.token);
  assert.ok(expP.exp < Date.now() / 1000 && expP.iat < expP.exp);
  const expiredId = await admin(issuer, '/__test/tokens', { user: 'alice', kind: 'id', exp_offset: -60 });
  await assert.rejects(jose.jwtVerify(expiredId.json.token, JWKS, { issuer, audience: 'ward-cli' }), jose.errors.JWTExpired);

  const wrong = await admin(issuer, '/__test/tokens', { user: 'alice', audience: 'not-ward' });
  assert.equal(jose.decodeJwt(wrong.json.token).aud, 'not-ward');
  await assert.rejects(jose.jwtVerify(wrong.json.token, JWKS, { issuer, audience: 'ward' }), jose.errors.JWTClaimValidationFailed);
  const wrongId = await admin(issuer, '/__test/tokens', { user: 'alice', kind: 'id', audience: 'other-client' });
  assert.equal((await jose.jwtVerify(wrongId.json.token, JWKS, { issuer })).payload.aud, 'other-client');

  assert.equal((await admin(issuer, '/__test/tokens', { user: 'nobody' })).status, 404);
});

test('device flow: approve via admin, real token endpoint issues tokens', async () => {
  const { issuer } = first;
  const JWKS = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const { tok, disc, da } = await deviceLogin(issuer, 'alice');
  assert.equal(tok.token_type, 'Bearer');
  assert.ok(tok.refresh_token, 'offline_access yields a refresh token');
  const at = (await jose.jwtVerify(tok.access_token, JWKS, { issuer, audience: 'ward', typ: 'at+jwt' })).payload;
  assert.equal(at.sub, 'alice');
  assert.deepEqual(at.groups, ALICE.groups);
  assert.deepEqual(at.amr, ['pwd', 'mfa']);
  assert.equal(at.acr, 'urn:ward:acr:mfa');
  const id = (await jose.jwtVerify(tok.id_token, JWKS, { issuer, audience: 'ward-cli' })).payload;
  assert.equal(id.email, 'alice@example.com');
  assert.deepEqual(id.groups, ALICE.groups);
  assert.deepEqual(id.amr, ['pwd', 'mfa']);
  assert.equal(id.acr, 'urn:ward:acr:mfa');

  const rt = await form(disc.token_endpoint, { client_id: 'ward-cli', grant_type: 'refresh_token', refresh_token: tok.refresh_token });
  assert.equal(rt.status, 200, JSON.stringify(rt.json));
  assert.equal((await jose.jwtVerify(rt.json.access_token, JWKS, { issuer, audience: 'ward' })).payload.sub, 'alice');

  // the same user code cannot be approved twice
  const again = await admin(issuer, '/__test/device/approve', { user_code: da.user_code, user: 'alice' });
  assert.equal(again.status, 400);
  assert.equal(again.json.detail.error, 'AlreadyUsedError');
  const unknown = await admin(issuer, '/__test/device/approve', { user_code: 'BCDF-GHJK', user: 'alice' });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.json.detail.error, 'NotFoundError');
  assert.equal((await admin(issuer, '/__test/device/approve', { user_code: 'BCDF-GHJK', user: 'nobody' })).status, 404);
});

test('device flow without resource parameter still yields a JWT for the audience', async () => {
  const { issuer } = first;
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const da = await form(disc.device_authorization_endpoint, { client_id: 'ward-cli', scope: 'openid email groups' });
  assert.equal((await admin(issuer, '/__test/device/approve', { user_code: da.json.user_code, user: 'bob' })).status, 200);
  const tok = await form(disc.token_endpoint, { client_id: 'ward-cli', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.json.device_code });
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  assert.equal(jose.decodeJwt(tok.json.access_token).aud, 'ward');
  assert.equal(tok.json.refresh_token, undefined);
  const bad = await form(disc.device_authorization_endpoint, { client_id: 'ward-cli', scope: 'openid', resource: 'ward' });
  assert.equal(bad.json.error, 'invalid_target');
});

test('device flow deny yields access_denied', async () => {
  const { issuer } = first;
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const da = await form(disc.device_authorization_endpoint, { client_id: 'ward-cli', scope: 'openid' });
  assert.equal((await admin(issuer, '/__test/device/deny', { user_code: da.json.user_code })).status, 200);
  const tok = await form(disc.token_endpoint, { client_id: 'ward-cli', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.json.device_code });
  assert.equal(tok.json.error, 'access_denied');
});

test('authorization code + PKCE with a loopback redirect on any port', async () => {
  const { issuer } = first;
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const redirectUri = 'http://127.0.0.1:49321/callback';
  const u = new URL(disc.authorization_endpoint);
  Object.entries({
    client_id: 'ward-cli', response_type: 'code', scope: 'openid email groups', redirect_uri: redirectUri,
    code_challenge: challenge, code_challenge_method: 'S256', state: 's1', nonce: 'n1', resource: 'urn:ward',
  }).forEach(([k, v]) => u.searchParams.set(k, v));
  const r = await admin(issuer, '/__test/authorize', { url: u.href, user: 'alice' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const cb = new URL(r.json.redirect);
  assert.equal(`${cb.origin}${cb.pathname}`, redirectUri);
  assert.equal(cb.searchParams.get('state'), 's1');
  assert.equal(cb.searchParams.get('iss'), issuer);
  const tok = await form(disc.token_endpoint, {
    client_id: 'ward-cli', grant_type: 'authorization_code', code: cb.searchParams.get('code'), redirect_uri: redirectUri, code_verifier: verifier,
  });
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  const JWKS = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
  assert.deepEqual((await jose.jwtVerify(tok.json.access_token, JWKS, { issuer, audience: 'ward' })).payload.groups, ALICE.groups);
  const id = (await jose.jwtVerify(tok.json.id_token, JWKS, { issuer, audience: 'ward-cli' })).payload;
  assert.equal(id.nonce, 'n1');
  assert.deepEqual(id.amr, ['pwd', 'mfa']);
});

test('SIGTERM exits cleanly; only one stdout line was printed', async () => {
  const code = await stop(first);
  assert.equal(code, 0);
  assert.equal(first.stdout().split('\n').filter(Boolean).length, 1);
});

test('key rotation: --rotate publishes old+new and signs with new; --retire-old drops old', async () => {
  const oldKid = jose.decodeProtectedHeader(oldToken).kid;
  const p2 = await start(['--keys', keysFile, '--rotate']);
  const jwks = await (await fetch(`${p2.issuer}/jwks`)).json();
  assert.equal(jwks.keys.length, 2);
  assert.equal(jwks.keys[1].kid, oldKid);
  const newKid = jwks.keys[0].kid;
  await admin(p2.issuer, '/__test/users', ALICE);
  const t = await admin(p2.issuer, '/__test/tokens', { user: 'alice' });
  assert.equal(jose.decodeProtectedHeader(t.json.token).kid, newKid);
  const local = jose.createLocalJWKSet(jwks);
  await jose.jwtVerify(t.json.token, local, { audience: 'ward' });
  await jose.jwtVerify(oldToken, local, { audience: 'ward' }); // old key still published
  assert.equal(await stop(p2), 0);

  const p3 = await start(['--keys', keysFile, '--retire-old']);
  const jwks3 = await (await fetch(`${p3.issuer}/jwks`)).json();
  assert.deepEqual(jwks3.keys.map((k) => k.kid), [newKid]);
  await assert.rejects(jose.jwtVerify(oldToken, jose.createLocalJWKSet(jwks3), { audience: 'ward' }), jose.errors.JWKSNoMatchingKey);
  await stop(p3);
});

for (const alg of ['EdDSA', 'ES256']) {
  test(`${alg} signing key: minted and device-flow tokens`, async () => {
    const p = await start(['--keys', path.join(tmp, `${alg}.json`), '--alg', `${alg},RS256`]);
    const jwks = await (await fetch(`${p.issuer}/jwks`)).json();
    assert.deepEqual(jwks.keys.map((k) => k.alg), [alg, 'RS256']);
    const disc = await (await fetch(`${p.issuer}/.well-known/openid-configuration`)).json();
    assert.ok(disc.id_token_signing_alg_values_supported.includes(alg));
    await admin(p.issuer, '/__test/users', ALICE);
    const JWKS = jose.createLocalJWKSet(jwks);
    const t = await admin(p.issuer, '/__test/tokens', { user: 'alice' });
    assert.equal((await jose.jwtVerify(t.json.token, JWKS, { issuer: p.issuer, audience: 'ward' })).protectedHeader.alg, alg);
    const { tok } = await deviceLogin(p.issuer, 'alice');
    assert.equal((await jose.jwtVerify(tok.access_token, JWKS, { issuer: p.issuer, audience: 'ward' })).protectedHeader.alg, alg);
    assert.equal((await jose.jwtVerify(tok.id_token, JWKS, { issuer: p.issuer, audience: 'ward-cli' })).protectedHeader.alg, alg);
    await stop(p);
  });
}
