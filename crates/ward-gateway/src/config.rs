//! The gateway's YAML configuration: parsing (line/column errors), the
//! checks `ward gateway check` runs, and the compiled form the request
//! pipeline uses (path templates, scope templates, JSON Schema validators).

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::contract::{OpenApi, QueryParam};
use ward_model::scope::Scope;

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// The URL clients use to reach the gateway; DPoP proofs' `htu` must
    /// start with it. Defaults to `http://` + the listening address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The control plane to follow.
    pub control_plane: ControlPlane,
    /// The protected service routes go to unless they name another, e.g.
    /// `http://127.0.0.1:9000` or `https://files.internal`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Speak HTTP/2 to the default upstream (`h2c` over `http://`, ALPN
    /// over `https://`) instead of HTTP/1.1.
    #[serde(default)]
    pub upstream_http2: bool,
    /// Trust anchors (PEM) for an `https://` default upstream instead of
    /// the system's roots.
    #[serde(default)]
    pub upstream_ca_file: Option<String>,
    /// Further protected services, by name; a route picks one with
    /// `upstream: <name>`.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Serve agents over TLS with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Seconds without the push stream after which sensitive routes fail closed.
    #[serde(default = "default_staleness")]
    pub staleness_secs: u64,
    /// Tolerated clock difference for `exp`, `nbf` and proof `iat`.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// How old a DPoP proof may be.
    #[serde(default = "default_proof_age")]
    pub proof_max_age_secs: u64,
    /// Largest accepted request body.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// A separate address for `/healthz`, `/readyz` and `/metrics`. With
    /// it, the proxy listener answers none of them (they cannot shadow
    /// upstream paths and agents cannot read the metrics); without it, the
    /// proxy listener answers them.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// A limit per client IP address, checked before anything else.
    #[serde(default)]
    pub ip_rate_limit: Option<RateLimitConfig>,
    /// The allowlist of routes; anything else is refused with 404.
    pub routes: Vec<RouteConfig>,
}

fn default_staleness() -> u64 {
    30
}
fn default_skew() -> u64 {
    5
}
fn default_proof_age() -> u64 {
    60
}
fn default_body() -> usize {
    64 * 1024
}

/// Where the control plane is and how to read its push stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// A token that may read `/v1/watch`: the bootstrap token or a tenant token.
    pub token: String,
    /// With a tenant token: that tenant's id. Tokens of other tenants are
    /// refused, because their revocations are not in this stream.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A protected service the gateway forwards to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL, `http://` or `https://`.
    pub url: String,
    /// Speak HTTP/2 (`h2c` over `http://`, ALPN over `https://`).
    #[serde(default)]
    pub http2: bool,
    /// Trust anchors (PEM) for `https://` instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// A client certificate chain (PEM) the gateway presents to the
    /// upstream, so the upstream can trust the identity headers only from
    /// the gateway (mutual TLS).
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// The gateway's own certificate for serving agents over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
}

/// One allowed route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name, used in logs.
    pub name: String,
    /// Allowed methods, upper case.
    pub methods: Vec<String>,
    /// Path template, e.g. `/spreadsheets/{team}/rows`.
    pub path: String,
    /// Scope template the token must cover, e.g. `spreadsheets:write:/team/{team}`.
    pub scope: String,
    /// The name of an entry of `upstreams`; without it, `upstream`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// JSON Schema file for the request body, relative to the config file.
    #[serde(default)]
    pub schema: Option<String>,
    /// OpenAPI 3.0/3.1 document (YAML or JSON) describing this route: each
    /// of the route's methods must be an operation on its path there, and
    /// that operation's JSON request body is the contract.
    #[serde(default)]
    pub openapi: Option<String>,
    /// With `openapi`: the operation's `operationId`, when the route has
    /// one method and the path alone is ambiguous or named differently.
    #[serde(default)]
    pub operation_id: Option<String>,
    /// Keep unknown object members allowed where the schema does not say;
    /// by default `additionalProperties: false` is applied.
    #[serde(default)]
    pub allow_unknown_fields: bool,
    /// Needs an approval-bound token and fresh control plane state.
    #[serde(default)]
    pub sensitive: bool,
    /// A feature flag that must not be off.
    #[serde(default)]
    pub flag: Option<String>,
    /// Per-agent rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Per-user (token `owner`) rate limit.
    #[serde(default)]
    pub user_rate_limit: Option<RateLimitConfig>,
    /// Requests per agent per UTC day.
    #[serde(default)]
    pub daily_quota: Option<u64>,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// A configuration problem, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the text.
    Literal(String),
    /// Captures one segment under a name.
    Param(String),
}

/// A route ready for matching.
pub struct Route {
    /// The route as configured.
    pub config: RouteConfig,
    /// The parsed path template.
    pub segments: Vec<Segment>,
    /// What each method's request body must be, by method.
    pub bodies: Vec<(String, BodyRule)>,
    /// What each method's query string may hold, by method (routes with an
    /// OpenAPI contract; others pass the query on unchecked).
    pub queries: Vec<(String, QueryRule)>,
    /// Index into [`Loaded::upstreams`].
    pub upstream: usize,
}

/// What a request body must be.
pub enum BodyRule {
    /// Absent, or any JSON document (the route has no contract).
    AnyJson,
    /// Valid against the contract's schema; absent only if not `required`.
    Schema {
        /// The compiled schema.
        validator: Arc<jsonschema::Validator>,
        /// Whether a request without a body is refused.
        required: bool,
        /// The one accepted media type, lower case: `application/json`, or
        /// the JSON media type the OpenAPI operation names.
        media_type: String,
    },
    /// Absent: the contract's operation takes no request body.
    Empty,
}

/// The query parameters a method of a route accepts.
pub struct QueryRule {
    /// The declared parameters and how their text is read.
    pub params: Vec<QueryParam>,
    /// The compiled schema of the object the query is read into.
    pub validator: jsonschema::Validator,
}

impl Route {
    /// The query rule for `method`, if the route's contract has one.
    pub fn query_rule(&self, method: &str) -> Option<&QueryRule> {
        self.queries
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, rule)| rule)
    }

    /// The rule for a request body sent with `method`.
    pub fn body_rule(&self, method: &str) -> &BodyRule {
        self.bodies
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&BodyRule::AnyJson, |(_, rule)| rule)
    }

    /// Whether any method of the route has a body contract.
    pub fn has_contract(&self) -> bool {
        self.bodies
            .iter()
            .any(|(_, rule)| !matches!(rule, BodyRule::AnyJson))
    }
}

/// An upstream with its files resolved against the configuration's folder.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `default` for `upstream`, else the key in `upstreams`.
    pub name: String,
    /// The configuration, with absolute file paths.
    pub config: UpstreamConfig,
}

/// The whole configuration, checked and compiled.
pub struct Loaded {
    /// The file as written.
    pub config: GatewayConfig,
    /// Routes in file order.
    pub routes: Vec<Route>,
    /// The upstreams routes refer to, the default first when there is one.
    pub upstreams: Vec<Upstream>,
    /// The serving certificate, with absolute file paths.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

/// Reads, parses and checks a configuration file, loading the schemas
/// relative to it.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read `{}`: {e}", path.display())))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &base).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
}

/// Parses and checks configuration text; schema paths are relative to `base`.
pub fn load_str(text: &str, base: &Path) -> Result<Loaded, ConfigError> {
    let config: GatewayConfig =
        ward_model::yaml::parse_yaml(text).map_err(|e| ConfigError(e.to_string()))?;
    check_url("control_plane.url", &config.control_plane.url)?;
    let upstreams = upstreams(&config, base)?;
    let tls = config.tls.as_ref().map(|tls| TlsConfig {
        cert_file: resolve(base, &tls.cert_file),
        key_file: resolve(base, &tls.key_file),
    });
    if let Some(tls) = &tls {
        crate::tls::server_config(tls).map_err(|e| ConfigError(format!("tls: {e}")))?;
    }
    if let Some(url) = &config.public_url {
        check_url("public_url", url)?;
    }
    if config.control_plane.token.trim().is_empty() {
        return Err(ConfigError(
            "control_plane.token is empty; give a token that may read /v1/watch".into(),
        ));
    }
    if config.routes.is_empty() {
        return Err(ConfigError(
            "routes is empty; the gateway would refuse everything".into(),
        ));
    }
    check_limit("ip_rate_limit", config.ip_rate_limit)?;
    let mut routes = Vec::with_capacity(config.routes.len());
    for (index, route) in config.routes.iter().enumerate() {
        routes.push(compile_route(index, route, base, &upstreams)?);
    }
    Ok(Loaded {
        config,
        routes,
        upstreams,
        tls,
    })
}

/// The default upstream and the named ones, checked, with their files
/// resolved and their TLS settings loaded once to find mistakes now.
fn upstreams(config: &GatewayConfig, base: &Path) -> Result<Vec<Upstream>, ConfigError> {
    let default = config.upstream.as_ref().map(|url| {
        (
            "default".to_owned(),
            "upstream".to_owned(),
            UpstreamConfig {
                url: url.clone(),
                http2: config.upstream_http2,
                ca_file: config.upstream_ca_file.clone(),
                client_cert_file: None,
                client_key_file: None,
            },
        )
    });
    if default.is_none() && (config.upstream_http2 || config.upstream_ca_file.is_some()) {
        return Err(ConfigError(
            "upstream_http2 and upstream_ca_file describe `upstream`, which is not set".into(),
        ));
    }
    let named = config
        .upstreams
        .iter()
        .map(|(name, upstream)| (name.clone(), format!("upstreams.{name}"), upstream.clone()));
    let mut out = Vec::new();
    for (name, at, mut upstream) in default.into_iter().chain(named) {
        if !ward_model::matrix::is_valid_name(&name) {
            return Err(ConfigError(format!(
                "{at}: `{name}` is not a valid name (lower-case letters, digits, `.`, `-` and `_`)"
            )));
        }
        check_url(&format!("{at}.url"), &upstream.url)?;
        if upstream.url.contains(['?', '#']) {
            return Err(ConfigError(format!(
                "{at}.url `{}` has a query or fragment; give the service's base URL",
                upstream.url
            )));
        }
        let https = upstream.url.starts_with("https://");
        let tls_files = [
            ("ca_file", &upstream.ca_file),
            ("client_cert_file", &upstream.client_cert_file),
            ("client_key_file", &upstream.client_key_file),
        ];
        for (field, file) in tls_files {
            if file.is_some() && !https {
                return Err(ConfigError(format!(
                    "{at}.{field} is set but `{}` is not an `https://` URL",
                    upstream.url
                )));
            }
        }
        if upstream.client_cert_file.is_some() != upstream.client_key_file.is_some() {
            return Err(ConfigError(format!(
                "{at}: client_cert_file and client_key_file go together"
            )));
        }
        for path in [
            &mut upstream.ca_file,
            &mut upstream.client_cert_file,
            &mut upstream.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            *path = resolve(base, path);
        }
        crate::tls::client_config(&upstream).map_err(|e| ConfigError(format!("{at}: {e}")))?;
        out.push(Upstream {
            name,
            config: upstream,
        });
    }
    if out.is_empty() {
        return Err(ConfigError(
            "no upstream: set `upstream` (the default) or `upstreams`".into(),
        ));
    }
    Ok(out)
}

fn resolve(base: &Path, file: &str) -> String {
    base.join(file).display().to_string()
}

fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{name} `{url}` is not an absolute http(s) URL, e.g. `http://127.0.0.1:8080`"
        )))
    }
}

fn compile_route(
    index: usize,
    route: &RouteConfig,
    base: &Path,
    upstreams: &[Upstream],
) -> Result<Route, ConfigError> {
    let at = format!("routes[{index}] (`{}`)", route.name);
    let wanted = route.upstream.as_deref().unwrap_or("default");
    let upstream = upstreams
        .iter()
        .position(|u| u.name == wanted)
        .ok_or_else(|| match &route.upstream {
            Some(name) => ConfigError(format!(
                "{at}.upstream `{name}` is not a key of `upstreams`"
            )),
            None => ConfigError(format!(
                "{at} names no `upstream` and there is no default `upstream`"
            )),
        })?;
    if route.methods.is_empty() {
        return Err(ConfigError(format!("{at}.methods is empty")));
    }
    for method in &route.methods {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError(format!(
                "{at}.methods: `{method}` is not an upper-case method such as `GET` or `POST`"
            )));
        }
    }
    let segments = parse_template(&route.path)
        .map_err(|reason| ConfigError(format!("{at}.path `{}`: {reason}", route.path)))?;
    let params: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
        .collect();
    let sample = substitute(&route.scope, |name| {
        params.contains(&name).then(|| "sample".to_owned())
    })
    .map_err(|reason| ConfigError(format!("{at}.scope `{}`: {reason}", route.scope)))?;
    sample.parse::<Scope>().map_err(|e| {
        ConfigError(format!(
            "{at}.scope `{}` does not make a valid scope: {e}",
            route.scope
        ))
    })?;
    check_limit(&format!("{at}.rate_limit"), route.rate_limit)?;
    check_limit(&format!("{at}.user_rate_limit"), route.user_rate_limit)?;
    if route.daily_quota == Some(0) {
        return Err(ConfigError(format!(
            "{at}.daily_quota is 0; remove the route instead"
        )));
    }
    let (bodies, queries) = contract_rules(route, base, &at)?;
    Ok(Route {
        config: route.clone(),
        segments,
        bodies,
        queries,
        upstream,
    })
}

/// The body rule of each of the route's methods, from `schema` or
/// `openapi`, and with `openapi` their query rules.
#[allow(
    clippy::type_complexity,
    reason = "two lists by method, built together from one document"
)]
fn contract_rules(
    route: &RouteConfig,
    base: &Path,
    at: &str,
) -> Result<(Vec<(String, BodyRule)>, Vec<(String, QueryRule)>), ConfigError> {
    let strict = !route.allow_unknown_fields;
    let compile = |schema: Value, origin: &str| {
        let validator = compile_schema(schema, strict)
            .map_err(|e| ConfigError(format!("{at}: {origin} is not a valid JSON Schema: {e}")))?;
        Ok::<_, ConfigError>(Arc::new(validator))
    };
    match (&route.schema, &route.openapi) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{at}: give either `schema` or `openapi`, not both"
        ))),
        (None, None) if route.operation_id.is_some() => {
            Err(ConfigError(format!("{at}.operation_id needs `openapi`")))
        }
        (None, None) => Ok((Vec::new(), Vec::new())),
        (Some(file), None) => {
            let path = base.join(file);
            let text = read(&path, &format!("{at}.schema"))?;
            let schema: Value = serde_json::from_str(&text).map_err(|e| {
                ConfigError(format!(
                    "{at}.schema: `{}` is not JSON: {e}",
                    path.display()
                ))
            })?;
            let validator = compile(schema, &format!("`{}`", path.display()))?;
            let bodies = route
                .methods
                .iter()
                .map(|method| {
                    let rule = BodyRule::Schema {
                        validator: Arc::clone(&validator),
                        required: true,
                        media_type: "application/json".to_owned(),
                    };
                    (method.clone(), rule)
                })
                .collect();
            Ok((bodies, Vec::new()))
        }
        (None, Some(file)) => {
            let path = base.join(file);
            let at = format!("{at}.openapi `{}`", path.display());
            let text = read(&path, &at)?;
            let api = OpenApi::parse(&text).map_err(|e| ConfigError(format!("{at}: {e}")))?;
            if route.operation_id.is_some() && route.methods.len() > 1 {
                return Err(ConfigError(format!(
                    "{at}: operation_id names one operation but the route has {} methods; split the route",
                    route.methods.len()
                )));
            }
            let operation_id = route.operation_id.as_deref();
            let mut bodies = Vec::new();
            let mut queries = Vec::new();
            for method in &route.methods {
                let body = api
                    .request_body(method, &route.path, operation_id)
                    .map_err(|e| ConfigError(format!("{at}: {e}")))?;
                let rule = match body {
                    Some(body) => BodyRule::Schema {
                        validator: compile(body.schema, &format!("the {method} request body"))?,
                        required: body.required,
                        media_type: body.media_type,
                    },
                    None => BodyRule::Empty,
                };
                bodies.push((method.clone(), rule));
                let query = api
                    .query(method, &route.path, operation_id)
                    .map_err(|e| ConfigError(format!("{at}: {e}")))?;
                let validator = compile_schema(query.schema, false).map_err(|e| {
                    ConfigError(format!(
                        "{at}: the {method} query parameters are not a valid JSON Schema: {e}"
                    ))
                })?;
                queries.push((
                    method.clone(),
                    QueryRule {
                        params: query.params,
                        validator,
                    },
                ));
            }
            Ok((bodies, queries))
        }
    }
}

fn check_limit(at: &str, limit: Option<RateLimitConfig>) -> Result<(), ConfigError> {
    match limit {
        Some(limit)
            if !(limit.per_second > 0.0 && limit.per_second.is_finite()) || limit.burst == 0 =>
        {
            Err(ConfigError(format!(
                "{at} needs per_second > 0 and burst >= 1"
            )))
        }
        _ => Ok(()),
    }
}

fn read(path: &Path, at: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{at}: cannot read `{}`: {e}", path.display())))
}

fn compile_schema(mut schema: Value, strict: bool) -> Result<jsonschema::Validator, String> {
    if strict && close_objects(&mut schema) && declares_old_draft(&schema) {
        return Err(
            "it combines schemas (allOf/anyOf/oneOf/$ref), and unknown fields can then be refused only with `unevaluatedProperties` of draft 2019-09 or later; declare `\"$schema\": \"https://json-schema.org/draft/2020-12/schema\"`, or set `additionalProperties` where the objects are combined".into(),
        );
    }
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
}

/// Refuses unknown object members wherever the contract does not say what
/// to do with them, and returns whether it used `unevaluatedProperties`
/// (which only drafts 2019-09 and later understand):
///
/// - a plain object schema (`type: object`, `properties` or
///   `patternProperties`) gets `additionalProperties: false`;
/// - a schema that combines others (`allOf`, `anyOf`, `oneOf`, `$ref`,
///   `then`/`else`, `dependentSchemas`) gets `unevaluatedProperties:
///   false`, so members declared by any branch that applied are known and
///   all others refused;
/// - the branches themselves and `$defs` entries (reached through `$ref`,
///   also from branches) stay open at their top level, since closing one
///   would refuse what a sibling declares, but everything nested inside
///   them is closed by these rules;
/// - nothing under `not` or `if` is touched: closing a condition or a
///   negation would change which documents pass in either direction.
///
/// A schema that already has `additionalProperties` or
/// `unevaluatedProperties` is left as written.
pub fn close_objects(schema: &mut Value) -> bool {
    let mut facts = Shared::default();
    facts.collect(schema, schema);
    close(schema, false, &BTreeSet::new(), &facts)
}

/// Keywords whose subschemas apply to the same instance as their parent.
const COMBINING: [&str; 9] = [
    "allOf",
    "anyOf",
    "oneOf",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "then",
    "else",
    "dependentSchemas",
];

/// What closing must know about the whole schema before changing it: the
/// property names of each `$defs` entry, and for each entry the names it
/// shares with a sibling branch somewhere (left open inside it).
#[derive(Default)]
struct Shared {
    def_properties: BTreeMap<String, BTreeSet<String>>,
    open_in_def: BTreeMap<String, BTreeSet<String>>,
}

impl Shared {
    fn collect(&mut self, schema: &Value, root: &Value) {
        if std::ptr::eq(schema, root) {
            for key in ["$defs", "definitions"] {
                for (name, def) in root
                    .get(key)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    self.def_properties
                        .insert(name.clone(), property_names(def).collect());
                }
            }
        }
        match schema {
            Value::Object(map) => {
                let shared = self.shared_names(map);
                if !shared.is_empty() {
                    for branch in branches(map) {
                        if let Some(name) = def_name(branch) {
                            self.open_in_def
                                .entry(name.to_owned())
                                .or_default()
                                .extend(shared.iter().cloned());
                        }
                    }
                }
                map.values().for_each(|child| self.collect(child, root));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect(child, root)),
            _ => {}
        }
    }

    /// Property names declared by more than one of: the node itself and
    /// each of its branches (a `$ref` branch declares its target's).
    fn shared_names(&self, map: &serde_json::Map<String, Value>) -> BTreeSet<String> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let own = map
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default();
        let branch_names = branches(map).map(|branch| {
            let mut names: BTreeSet<String> = property_names(branch).collect();
            if let Some(target) = def_name(branch).and_then(|d| self.def_properties.get(d)) {
                names.extend(target.iter().cloned());
            }
            names
        });
        for names in std::iter::once(own).chain(branch_names) {
            for name in names {
                *seen.entry(name).or_default() += 1;
            }
        }
        seen.into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|(name, _)| name)
            .collect()
    }
}

/// The subschemas of `allOf`, `anyOf`, `oneOf`, `then` and `else`.
fn branches(map: &serde_json::Map<String, Value>) -> impl Iterator<Item = &Value> {
    ["allOf", "anyOf", "oneOf", "then", "else"]
        .into_iter()
        .filter_map(|key| map.get(key))
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            single => vec![single],
        })
}

fn property_names(schema: &Value) -> impl Iterator<Item = String> + '_ {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.keys().cloned())
}

/// `X` of a `{"$ref": "#/$defs/X"}` (or `#/definitions/X`).
fn def_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref")?.as_str()?;
    let name = reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))?;
    (!name.contains('/')).then_some(name)
}

/// Closes `schema`; `branch`: it applies beside siblings, so its own top
/// stays open; `keep_open`: property names a sibling also declares, whose
/// schemas are left as written (closing one side would refuse the other's
/// members).
fn close(schema: &mut Value, branch: bool, keep_open: &BTreeSet<String>, facts: &Shared) -> bool {
    let Value::Object(map) = schema else {
        return false;
    };
    let decided =
        map.contains_key("additionalProperties") || map.contains_key("unevaluatedProperties");
    let combining = COMBINING.iter().any(|k| map.contains_key(*k));
    let object = map.get("type").is_some_and(|t| {
        t == "object"
            || t.as_array()
                .is_some_and(|a| a.iter().any(|v| v == "object"))
    }) || map.contains_key("properties")
        || map.contains_key("patternProperties");
    let mut unevaluated = false;
    if !branch && !decided {
        if combining {
            map.insert("unevaluatedProperties".into(), Value::Bool(false));
            unevaluated = true;
        } else if object {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    let shared = facts.shared_names(map);
    let none = BTreeSet::new();
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties", Value::Object(properties)) => {
                for (name, property) in properties.iter_mut() {
                    if !keep_open.contains(name) && !shared.contains(name) {
                        unevaluated |= close(property, false, &none, facts);
                    }
                }
            }
            ("$defs" | "definitions", Value::Object(defs)) => {
                for (name, def) in defs.iter_mut() {
                    let open = facts.open_in_def.get(name).unwrap_or(&none);
                    unevaluated |= close(def, true, open, facts);
                }
            }
            ("patternProperties" | "dependentSchemas", Value::Object(children)) => {
                let branch = key == "dependentSchemas";
                for child in children.values_mut() {
                    unevaluated |= close(child, branch, &none, facts);
                }
            }
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                for item in items {
                    unevaluated |= close(item, true, &shared, facts);
                }
            }
            ("then" | "else", child) => unevaluated |= close(child, true, &shared, facts),
            ("prefixItems" | "items", Value::Array(items)) => {
                for item in items {
                    unevaluated |= close(item, false, &none, facts);
                }
            }
            (
                "items"
                | "additionalItems"
                | "unevaluatedItems"
                | "contains"
                | "additionalProperties"
                | "unevaluatedProperties",
                child,
            ) => unevaluated |= close(child, false, &none, facts),
            _ => {}
        }
    }
    unevaluated
}

/// Whether a schema declares a draft older than 2019-09, which ignores
/// `unevaluatedProperties`.
fn declares_old_draft(schema: &Value) -> bool {
    schema
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|s| {
            ["draft-03", "draft-04", "draft-06", "draft-07"]
                .iter()
                .any(|d| s.contains(d))
        })
}

/// Parses `/a/{b}/c` into segments.
pub fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with `/`".into());
    };
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for part in rest.split('/') {
        if part.is_empty() {
            return Err("has an empty segment (`//` or a trailing `/`)".into());
        }
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`{{{name}}}` is not a valid parameter name"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            names.push(name.to_owned());
            out.push(Segment::Param(name.to_owned()));
        } else if part.contains(['{', '}', '%', '*']) || part == "." || part == ".." {
            return Err(format!(
                "segment `{part}` must be literal text or a whole `{{name}}`"
            ));
        } else {
            out.push(Segment::Literal(part.to_owned()));
        }
    }
    Ok(out)
}

/// Replaces each `{name}` in `template` with `value(name)`; unknown names
/// are an error.
pub fn substitute(
    template: &str,
    value: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "has an unclosed `{`".to_owned())?;
        let name = &after[..close];
        let replacement =
            value(name).ok_or_else(|| format!("`{{{name}}}` is not a parameter of the path"))?;
        out.push_str(&replacement);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("has a `}` without `{`".into());
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_without_a_say_on_unknown_members_are_closed() {
        let mut schema = json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {}}},
                           "c": {"type": "object", "additionalProperties": true}},
            "items": {"properties": {}}
        });
        close_objects(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["a"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["c"]["additionalProperties"], true);
        assert_eq!(schema["items"]["additionalProperties"], false);
    }

    /// The schema closed, then each document checked: `(document, passes)`.
    fn closed_accepts(schema: Value, cases: &[(Value, bool)]) {
        let validator = compile_schema(schema.clone(), true).unwrap();
        for (document, passes) in cases {
            assert_eq!(
                validator.is_valid(document),
                *passes,
                "{document} against {schema}"
            );
        }
    }

    #[test]
    fn combined_schemas_refuse_members_no_applying_branch_declares() {
        let object = |name: &str| json!({"type": "object", "properties": {name: {}}});
        let required =
            |name: &str| json!({"type": "object", "properties": {name: {}}, "required": [name]});
        closed_accepts(
            json!({"oneOf": [required("path"), required("url")]}),
            &[
                (json!({"path": "a"}), true),
                (json!({"path": "a", "isAdmin": true}), false),
            ],
        );
        closed_accepts(
            json!({"type": "object", "properties": {"q": {}}, "patternProperties": {"^x-": {}}}),
            &[
                (json!({"q": "a", "x-trace": 1}), true),
                (json!({"q": "a", "isAdmin": true}), false),
            ],
        );
        closed_accepts(
            json!({"type": "object", "properties": {
                "filter": {"anyOf": [object("ext"), {"type": "null"}]}}}),
            &[
                (json!({"filter": null}), true),
                (json!({"filter": {"ext": "md"}}), true),
                (json!({"filter": {"ext": "md", "isAdmin": true}}), false),
            ],
        );
        // Inheritance: a base in `$defs` extended by a sibling branch.
        closed_accepts(
            json!({"$defs": {"Base": object("a")},
                   "allOf": [{"$ref": "#/$defs/Base"}, object("b")]}),
            &[
                (json!({"a": 1, "b": 2}), true),
                (json!({"a": 1, "c": 3}), false),
            ],
        );
        // A reference in a property position, and a recursive one.
        closed_accepts(
            json!({"$defs": {"Node": {"type": "object", "properties": {
                       "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
                   "type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}}),
            &[
                (json!({"root": {"children": [{"children": []}]}}), true),
                (json!({"root": {"children": [{"leaf": 1}]}}), false),
            ],
        );
        // A property two branches refine stays as written in both: closing
        // one side would refuse what the other declares.
        let meta = |name: &str| json!({"type": "object", "properties": {"meta": {"type": "object", "properties": {name: {}}}}});
        closed_accepts(
            json!({"allOf": [meta("x"), meta("y")]}),
            &[
                (json!({"meta": {"x": 1, "y": 2}}), true),
                (json!({"meta": {"x": 1}, "other": 1}), false),
            ],
        );
        closed_accepts(
            json!({"$defs": {"Base": meta("x")},
                   "allOf": [{"$ref": "#/$defs/Base"}, meta("y")]}),
            &[
                (json!({"meta": {"x": 1, "y": 2}}), true),
                (json!({"other": 1}), false),
            ],
        );
        // A property only one branch declares is closed inside it.
        closed_accepts(
            json!({"allOf": [meta("x"), object("b")]}),
            &[
                (json!({"meta": {"x": 1}, "b": 2}), true),
                (json!({"meta": {"x": 1, "evil": 1}}), false),
            ],
        );
        // Dynamic references combine like `$ref`.
        closed_accepts(
            json!({"$defs": {"Node": {"$dynamicAnchor": "node", "type": "object",
                       "properties": {"a": {}}}},
                   "type": "object", "properties": {"p": {"$dynamicRef": "#node"}}}),
            &[
                (json!({"p": {"a": 1}}), true),
                (json!({"p": {"a": 1, "evil": 1}}), false),
            ],
        );
        // `not` and `if` are left as written: closing them would widen
        // or shift what passes.
        closed_accepts(
            json!({"type": "object", "properties": {"a": {}},
                   "not": {"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]}}),
            &[(json!({"a": 2}), true), (json!({"a": 1}), false)],
        );
    }

    #[test]
    fn an_old_draft_that_cannot_refuse_unknown_members_of_combined_schemas_is_refused() {
        let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#",
                            "allOf": [{"type": "object", "properties": {"a": {}}}]});
        let error = compile_schema(schema.clone(), true).unwrap_err();
        assert!(error.contains("2020-12"), "{error}");
        assert!(compile_schema(schema, false).is_ok());
        let plain = json!({"$schema": "http://json-schema.org/draft-07/schema#",
                           "type": "object", "properties": {"a": {}}});
        assert!(
            !compile_schema(plain, true)
                .unwrap()
                .is_valid(&json!({"b": 1}))
        );
    }

    #[test]
    fn templates_substitute_only_path_parameters() {
        assert_eq!(
            substitute("x:write:/team/{team}", |n| (n == "team")
                .then(|| "a".into()))
            .unwrap(),
            "x:write:/team/a"
        );
        assert!(substitute("x:write:/{other}", |_| None).is_err());
        assert!(parse_template("/a//b").is_err());
        assert!(parse_template("/a/{b}/{b}").is_err());
        assert!(parse_template("/a/x{b}").is_err());
    }

    #[test]
    fn a_config_with_an_unknown_key_names_its_line() {
        let text = "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:1\ncontrol_plane: {url: http://127.0.0.1:2, token: t}\nroutes: []\nbogus: 1\n";
        let error = load_str(text, Path::new(".")).unwrap_err();
        assert!(error.0.contains("bogus"), "{error}");
        assert!(error.0.contains('5') || error.0.contains("line"), "{error}");
    }
}
