//! What a request may carry besides its path: with an OpenAPI contract,
//! the query string (declared parameters only, typed, validated); the body
//! rule of the route's method (required, forbidden or any JSON), its
//! content type, size, read deadline, duplicate-free JSON and the
//! contract's schema. Knows nothing about tokens or the upstream.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use super::response::shown;
use super::route::hex_digit;
use crate::config::{BodyRule, QueryRule, Route};
use crate::contract::QueryKind;
use crate::error::GatewayError;

/// Checks the query string against the query rule of the route's
/// `method`, when its contract has one.
pub fn check_query(
    route: &Route,
    method: &Method,
    query: Option<&str>,
) -> Result<(), GatewayError> {
    match route.query_rule(method.as_str()) {
        Some(rule) => check_query_rule(rule, query.unwrap_or("")),
        None => Ok(()),
    }
}

/// Reads a query string into the object its contract describes and
/// checks it: only declared names, a name more than once only for arrays,
/// values typed by their schemas.
fn check_query_rule(rule: &QueryRule, query: &str) -> Result<(), GatewayError> {
    let mut object = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (form_decode(name)?, form_decode(value)?);
        let field = format!("?{name}");
        let Some(param) = rule.params.iter().find(|p| p.name == name) else {
            return Err(GatewayError::bad_request(
                "unknown_query_parameter",
                format!(
                    "query parameter `{}` is not in the route's contract",
                    shown(&name)
                ),
            )
            .field(field));
        };
        match (&param.kind, object.get_mut(&name)) {
            (QueryKind::Array(item), Some(Value::Array(items))) => items.push(item.read(&value)),
            (QueryKind::Array(item), None) => {
                object.insert(name, Value::Array(vec![item.read(&value)]));
            }
            (kind, None) => {
                object.insert(name, kind.read(&value));
            }
            (_, Some(_)) => {
                return Err(GatewayError::bad_request(
                    "duplicate_query_parameter",
                    format!("query parameter `{}` is given more than once", shown(&name)),
                )
                .field(field));
            }
        }
    }
    if let Err(error) = rule.validator.validate(&Value::Object(object)) {
        let path = error.instance_path().as_str().to_owned();
        let name = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                property.as_str().unwrap_or_default().to_owned()
            }
            _ => path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        return Err(GatewayError::bad_request(
            "schema_violation",
            format!("the query does not match the route's contract: {error}"),
        )
        .field(format!("?{name}")));
    }
    Ok(())
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
fn form_decode(text: &str) -> Result<String, GatewayError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let decoded = match (rest.next(), rest.next()) {
                    (Some(high), Some(low)) => hex_digit(high).zip(hex_digit(low)),
                    _ => None,
                };
                let Some((high, low)) = decoded else {
                    return Err(GatewayError::bad_request(
                        "invalid_query",
                        "the query has a `%` not followed by two hex digits",
                    ));
                };
                bytes.push(high * 16 + low);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        GatewayError::bad_request("invalid_query", "the query does not decode to UTF-8")
    })
}

/// The request body, read and checked against the body rule of the
/// route's `method`; empty when none was sent and none is required.
pub async fn read(
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    body: Incoming,
    max_body: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let rule = route.body_rule(method.as_str());
    let sent = declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    match rule {
        BodyRule::Empty if sent => {
            return Err(GatewayError::bad_request(
                "unexpected_body",
                format!("{method} on this route takes no request body"),
            ));
        }
        BodyRule::Schema { required: true, .. } if !sent => {
            return Err(GatewayError::bad_request(
                "body_required",
                "this route needs a JSON request body",
            ));
        }
        _ if !sent => return Ok(Bytes::new()),
        _ => {}
    }
    let expected = match rule {
        BodyRule::Schema { media_type, .. } => media_type.as_str(),
        _ => "application/json",
    };
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let json_type = match (types.next(), types.next()) {
        (Some(only), None) => only
            .to_str()
            .is_ok_and(|value| is_json_content_type(value, expected)),
        _ => false,
    };
    if !json_type {
        return Err(GatewayError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("request bodies of this route must be sent with `Content-Type: {expected}`"),
        )
        .field("Content-Type"));
    }
    let bytes = ward_serve::read_body(body, max_body)
        .await
        .map_err(|e| GatewayError::new(e.status(), e.code(), e.message(max_body)))?;
    let value = ward_auth::json::parse_unique(&bytes).map_err(|e| {
        GatewayError::bad_request("invalid_json", format!("the request body is not acceptable JSON (one document, no duplicate member names): {e}"))
    })?;
    if let BodyRule::Schema { validator, .. } = rule
        && let Err(error) = validator.validate(&value)
    {
        let pointer = error.instance_path().as_str().to_owned();
        let field = if pointer.is_empty() {
            "/".to_owned()
        } else {
            pointer
        };
        return Err(match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
            | jsonschema::error::ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let name = unexpected.first().cloned().unwrap_or_default();
                GatewayError::bad_request(
                    "unknown_field",
                    format!(
                        "unknown field `{name}`; the contract of this route does not allow it"
                    ),
                )
                .field(format!("{}/{name}", field.trim_end_matches('/')))
            }
            jsonschema::error::ValidationErrorKind::FalseSchema => GatewayError::bad_request(
                "forbidden_field",
                format!("`{field}` may not be sent; the contract of this route marks it read-only or forbidden"),
            )
            .field(field),
            _ => GatewayError::bad_request(
                "schema_violation",
                format!("the request body does not match the route's contract: {error}"),
            )
            .field(field),
        });
    }
    Ok(bytes)
}

/// Whether a `Content-Type` is `expected` (a JSON media type), with no
/// parameter but `charset=utf-8`.
fn is_json_content_type(value: &str, expected: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(expected) {
        return false;
    }
    parts.all(|p| {
        let p = p.trim();
        p.is_empty() || p.eq_ignore_ascii_case("charset=utf-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_content_types_pass() {
        let json = "application/json";
        assert!(is_json_content_type("application/json", json));
        assert!(is_json_content_type(
            "Application/JSON; charset=utf-8",
            json
        ));
        assert!(!is_json_content_type(
            "application/json; charset=latin1",
            json
        ));
        assert!(!is_json_content_type("text/plain", json));
        assert!(!is_json_content_type("application/jsonx", json));
        let patch = "application/merge-patch+json";
        assert!(is_json_content_type("application/merge-patch+json", patch));
        assert!(!is_json_content_type("application/json", patch));
    }
}
