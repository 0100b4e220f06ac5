//! The one error type of the gateway and its mapping to a status code and
//! the control plane's JSON error body. Nothing else in the crate chooses a
//! status for a refusal.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use ward_api::{ErrorBody, ErrorDetail};

/// Why the gateway refused or failed a request. Messages are safe to show
/// to the client: they never carry upstream internals or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What was wrong and how to fix it.
    pub message: String,
    /// The offending field (JSON path or header name), if one is to blame.
    pub field: Option<String>,
    /// Seconds to wait before retrying (429 and 503).
    pub retry_after: Option<u64>,
    /// Further response headers (`RateLimit-*`, `Allow`).
    pub headers: Vec<(&'static str, String)>,
}

impl GatewayError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Names the offending field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 with a code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 with a code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The response: the JSON error body with the correlation id, which is
    /// also set as `X-Correlation-Id` by the caller.
    pub fn into_response(self, correlation_id: &str) -> Response<Full<Bytes>> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
                correlation_id: correlation_id.to_owned(),
                approval_id: None,
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(bytes)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("DPoP algs=\"EdDSA\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

impl From<ward_auth::AuthError> for GatewayError {
    fn from(error: ward_auth::AuthError) -> Self {
        use ward_auth::AuthError as E;
        let status = match error {
            E::Random(_) | E::InvalidExpectation(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        let message = match error {
            E::Random(_) | E::InvalidExpectation(_) => {
                "the gateway could not check the credentials; try again".to_owned()
            }
            ref other => other.to_string(),
        };
        GatewayError::new(status, error.code(), message)
    }
}
