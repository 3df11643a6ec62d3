//! axum's extractors with their rejections as problem+json, like every other error of
//! this API (axum answers them in plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON request body (at most the routes' body limit).
pub(crate) struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(e) => Err(rejected(e.status(), e.body_text(), &e)),
        }
    }
}

/// Path parameters, percent-decoded (`%2F` in a repository segment becomes `/`).
pub(crate) struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) => Err(rejected(e.status(), e.body_text(), &e)),
        }
    }
}

/// Query parameters.
pub(crate) struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(e) => Err(rejected(e.status(), e.body_text(), &e)),
        }
    }
}

/// The rejection's own status (400, 413, 415, 422…) and message.
fn rejected<E: std::fmt::Debug>(status: axum::http::StatusCode, text: String, e: &E) -> Problem {
    if status.is_server_error() {
        tracing::error!(error = ?e, "request extraction failed");
        return Problem::new(status, "internal server error");
    }
    Problem::new(status, text)
}

/// A JSON body that may be absent: an empty body is `T::default()` (Quay's clients send
/// some bodies only when they have something to say).
pub(crate) struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(e) => return Err(rejected(e.status(), e.body_text(), &e)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid JSON body: {e}"),
                )
            })
    }
}
