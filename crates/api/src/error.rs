//! The one place where errors become HTTP responses, in the distribution spec's JSON format.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_auth::AuthError;
use bulwark_oci::{ErrorCode, OciError};
use bulwark_registry::RegistryError;

/// An error on the `/v2` API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Extra headers some errors carry (the upload's `Range` on a 416).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.as_str(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            message,
        )
    }
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BlobUnknown
        | ErrorCode::BlobUploadUnknown
        | ErrorCode::ManifestUnknown
        | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Denied => StatusCode::FORBIDDEN,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BlobUploadInvalid
        | ErrorCode::DigestInvalid
        | ErrorCode::ManifestBlobUnknown
        | ErrorCode::ManifestInvalid
        | ErrorCode::NameInvalid
        | ErrorCode::SizeInvalid
        | ErrorCode::Unsupported => StatusCode::BAD_REQUEST,
    }
}

impl From<OciError> for ApiError {
    fn from(e: OciError) -> Self {
        ApiError::new(status_of(e.code()), e.code(), e.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let Some(code) = e.code() else {
            tracing::error!(error = %e, "request failed on a server fault");
            return ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "UNKNOWN",
                message: "internal server error".into(),
                headers: Vec::new(),
            };
        };
        let status = match &e {
            RegistryError::ManifestTooLarge { .. } | RegistryError::BlobTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            RegistryError::ChunkOutOfOrder { .. } | RegistryError::RangeNotSatisfiable { .. } => {
                StatusCode::RANGE_NOT_SATISFIABLE
            }
            _ => status_of(code),
        };
        let mut err = ApiError::new(status, code, e.to_string());
        if let RegistryError::RangeNotSatisfiable { size } = e {
            err = err.with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
        }
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message }]
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().extend(self.headers);
        resp
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials
            | AuthError::InvalidToken(_)
            | AuthError::CredentialRefused(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            ),
            AuthError::RateLimited(secs) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                e.to_string(),
            )
            .with_header(header::RETRY_AFTER, secs.into()),
            AuthError::Denied => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, e.to_string())
            }
            AuthError::Invalid(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Unsupported,
                e.to_string(),
            ),
            AuthError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, e.to_string())
            }
            AuthError::Conflict(_) | AuthError::Meta(_) | AuthError::Crypto(_) => {
                tracing::error!(error = %e, "authorization failed on a server fault");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "UNKNOWN",
                    message: "internal server error".into(),
                    headers: Vec::new(),
                }
            }
        }
    }
}
