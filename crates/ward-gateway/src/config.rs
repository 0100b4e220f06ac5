//! The gateway's YAML configuration: the file as written ([`file`]), the
//! checked and compiled form the request pipeline uses ([`compiled`]),
//! contracts as closed JSON Schemas ([`schema`]) and path and scope
//! templates ([`template`]). Parsing reports line and column
//! ([`ward_model::yaml`]).

pub mod compiled;
pub mod file;
pub mod schema;
pub mod template;

pub use compiled::{BodyRule, ConfigError, Loaded, QueryRule, Route, Upstream, load, load_str};
pub use file::{
    ControlPlane, GatewayConfig, RateLimitConfig, RouteConfig, TlsConfig, UpstreamConfig,
};
pub use template::{Segment, substitute};
