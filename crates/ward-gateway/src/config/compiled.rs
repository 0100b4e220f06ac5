//! The configuration checked and compiled: upstreams with their files
//! resolved, routes with their parsed path template, limits and the body
//! and query rules of each method; every mistake named with where it is
//! and how to fix it. Knows nothing about requests.

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use ward_model::scope::Scope;

use super::file::{GatewayConfig, RateLimitConfig, RouteConfig, TlsConfig, UpstreamConfig};
use super::schema::compile_schema;
use super::template::{Segment, parse_template, substitute};
use crate::contract::{OpenApi, QueryParam};

/// A configuration problem, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]
    use super::*;

    #[test]
    fn a_config_with_an_unknown_key_names_its_line() {
        let text = "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:1\ncontrol_plane: {url: http://127.0.0.1:2, token: t}\nroutes: []\nbogus: 1\n";
        let error = load_str(text, Path::new(".")).unwrap_err();
        assert!(error.0.contains("bogus"), "{error}");
        assert!(error.0.contains('5') || error.0.contains("line"), "{error}");
    }
}
