//! Request extractors that turn every malformed input into an [`ApiError`]:
//! strict JSON bodies (content type, size, unknown fields, path of the bad
//! field) and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body, `application/json` only, within the size limit.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        json_body(req, state.config.max_body_bytes).await.map(Json)
    }
}

/// A JSON body with its own size limit (for the few endpoints that take
/// larger documents, such as policy bundles).
pub async fn json_body<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected content type `application/json`, got `{content_type}`"),
        ));
    }
    let bytes = read_limited(req, limit).await?;
    parse_json(&bytes)
}

/// Whether `content_type` is JSON (parameters such as charset allowed).
pub fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body with [`ward_serve::read_body`]: more than `limit` bytes is
/// 413, a body that has not arrived within
/// [`ward_serve::BODY_READ_DEADLINE`] is 408.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    ward_serve::read_body(req.into_body(), limit)
        .await
        .map_err(|e| ApiError::new(e.status(), e.code(), e.message(limit)))
}

/// Deserialises JSON, naming the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = json_message(&inner);
        let field = (path != ".").then_some(path);
        let mut api = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
        if inner.is_data() {
            api.code = "invalid_field";
        }
        api.field = field;
        api
    })?;
    deserializer.end().map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            json_message(&error),
        )
    })?;
    Ok(value)
}

fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    // Drop serde_json's " at line 1 column 5" suffix: the field path says more.
    match text.find(" at line ") {
        Some(index) if error.is_data() => text[..index].to_owned(),
        _ => text,
    }
}

/// Query-string parameters; unknown or malformed ones answer 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs = form_urlencoded::parse(query.as_bytes());
        let mut map = serde_json::Map::new();
        for (key, value) in pairs {
            if map
                .insert(
                    key.to_string(),
                    serde_json::Value::String(value.to_string()),
                )
                .is_some()
            {
                return Err(ApiError::invalid(
                    key.to_string(),
                    format!("query parameter `{key}` is given more than once"),
                ));
            }
        }
        serde_path_to_error::deserialize(serde_json::Value::Object(map))
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                ApiError::invalid(path, format!("bad query string: {}", error.into_inner()))
            })
    }
}

/// The request's one `DPoP` header (RFC 9449): a proof of possession of
/// the agent's device key.
pub fn dpop_proof(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().map_err(|_| {
            ApiError::dpop("invalid_dpop_proof", "the `DPoP` header is not valid text")
        }),
        (None, _) => Err(ApiError::dpop(
            "invalid_dpop_proof",
            "missing `DPoP` header: sign a proof with the device key",
        )),
        (Some(_), Some(_)) => Err(ApiError::dpop(
            "invalid_dpop_proof",
            "more than one `DPoP` header",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Outer {
        name: String,
        items: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "fields exist to be deserialised")]
    struct Inner {
        count: u32,
    }

    fn error_of(body: &str) -> (String, &'static str, String) {
        match parse_json::<Outer>(body.as_bytes()) {
            Ok(value) => (format!("{value:?}"), "ok", String::new()),
            Err(e) => (e.field.unwrap_or_default(), e.code, e.message),
        }
    }

    #[test]
    fn bad_json_names_the_field_and_the_reason() {
        assert_eq!(
            error_of(r#"{"name":"a","items":[{"count":1},{"count":"x"}]}"#),
            (
                "items[1].count".into(),
                "invalid_field",
                "invalid type: string \"x\", expected u32".into()
            )
        );
        let (field, code, message) = error_of(r#"{"name":"a","items":[],"admin":true}"#);
        assert_eq!((field.as_str(), code), ("admin", "invalid_field"));
        assert!(message.starts_with("unknown field `admin`"), "{message}");
        let (_, code, message) = error_of(r#"{"name":"a","items":[]"#);
        assert_eq!(code, "invalid_json", "{message}");
        let (_, code, _) = error_of(r#"{"name":"a","items":[]} trailing"#);
        assert_eq!(code, "invalid_json");
        let (field, code, message) = error_of(r#"{"items":[]}"#);
        assert_eq!((field.as_str(), code), ("", "invalid_field"), "{message}");
        assert!(message.contains("missing field `name`"));
    }

    #[test]
    fn json_content_types_are_recognised_strictly() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonp"));
        assert!(!is_json(""));
    }
}
