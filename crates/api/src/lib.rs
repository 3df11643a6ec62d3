//! HTTP for Bulwark: the OCI `/v2` API, health endpoints and Prometheus metrics.
//! Handlers parse, call the registry layer and map the result; errors map in `error`.

mod error;
mod jobs;
mod metrics;
mod problem;
mod v2;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bulwark_meta::JobStore;
use bulwark_registry::Registry;
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    registry: Arc<Registry>,
    jobs: Arc<dyn JobStore>,
    prometheus: Option<PrometheusHandle>,
    access_log: bool,
    request_ids: Arc<metrics::RequestIds>,
}

impl AppState {
    /// `prometheus` renders `/metrics`; without it the route answers 404.
    pub fn new(
        registry: Arc<Registry>,
        jobs: Arc<dyn JobStore>,
        prometheus: Option<PrometheusHandle>,
        access_log: bool,
    ) -> Self {
        AppState {
            registry,
            jobs,
            prometheus,
            access_log,
            request_ids: Arc::default(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", any(v2::dispatch))
        .route("/v2/", any(v2::dispatch))
        .route("/v2/{*path}", any(v2::dispatch))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        // Read-only until access control lands; then superusers only.
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::one))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.registry.check_ready().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"))
        }
    }
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    match &state.prometheus {
        Some(h) => (StatusCode::OK, h.render()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}
