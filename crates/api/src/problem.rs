//! Errors of the management API (`/api/v1`), as RFC 9457 `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    /// Seconds, for 429 answers.
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }
}

impl From<bulwark_meta::MetaError> for Problem {
    fn from(e: bulwark_meta::MetaError) -> Self {
        tracing::error!(error = %e, "management API request failed on a server fault");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
    }
}

impl From<bulwark_auth::AuthError> for Problem {
    fn from(e: bulwark_auth::AuthError) -> Self {
        use bulwark_auth::AuthError as E;
        let status = match &e {
            E::InvalidCredentials | E::InvalidToken(_) | E::CredentialRefused(_) => {
                StatusCode::UNAUTHORIZED
            }
            E::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            E::Denied => StatusCode::FORBIDDEN,
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Meta(_) | E::Crypto(_) => {
                tracing::error!(error = %e, "management API request failed on a server fault");
                return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
            }
        };
        let mut problem = Problem::new(status, e.to_string());
        if let E::RateLimited(secs) = e {
            problem.retry_after = Some(secs);
        }
        problem
    }
}

/// Registry errors on the management API: the caller's mistakes keep their message; a
/// refusal by an immutable tag is a conflict with the tag's state, not missing rights.
impl From<bulwark_registry::RegistryError> for Problem {
    fn from(e: bulwark_registry::RegistryError) -> Self {
        use bulwark_oci::ErrorCode as C;
        use bulwark_registry::RegistryError as E;
        let status = match (&e, e.code()) {
            (_, None) => {
                tracing::error!(error = %e, "management API request failed on a server fault");
                return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
            }
            (E::TagImmutable(_), _) => StatusCode::CONFLICT,
            (_, Some(C::NameUnknown | C::ManifestUnknown | C::BlobUnknown)) => {
                StatusCode::NOT_FOUND
            }
            (_, Some(C::TooManyRequests)) => StatusCode::TOO_MANY_REQUESTS,
            (_, Some(C::Denied)) => StatusCode::FORBIDDEN,
            (_, Some(_)) => StatusCode::BAD_REQUEST,
        };
        Problem::new(status, e.to_string())
    }
}

/// Scanning errors: an unknown manifest or scanning switched off are the caller's to know;
/// the rest are server faults.
impl From<bulwark_security::SecurityError> for Problem {
    fn from(e: bulwark_security::SecurityError) -> Self {
        use bulwark_security::SecurityError as E;
        match e {
            E::ManifestUnknown(_) => Problem::new(StatusCode::NOT_FOUND, e.to_string()),
            E::Disabled => Problem::new(StatusCode::NOT_FOUND, e.to_string()),
            E::NotScanned(_) => Problem::new(StatusCode::CONFLICT, e.to_string()),
            E::InvalidVulnerabilityData(_) | E::InvalidPolicy(_) => {
                Problem::new(StatusCode::BAD_REQUEST, e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "management API request failed on a server fault");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bulwark\""),
            );
        }
        resp
    }
}
