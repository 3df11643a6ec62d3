//! HTTP for Bulwark: the OCI `/v2` API, the Docker token endpoint, the management API,
//! health endpoints and Prometheus metrics. Handlers parse, authorize (through `auth`), call
//! a layer and map the result; errors map in `error` (registry API) and `problem`
//! (management API).

mod auth;
mod error;
mod idle_body;
mod jobs;
mod management;
mod metrics;
mod problem;
mod token;
mod v2;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bulwark_auth::{Accounts, Authenticator};
use bulwark_meta::JobStore;
use bulwark_registry::Registry;
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;
pub use idle_body::IdleTimer;
pub use v2::ROUTES as REGISTRY_ROUTES;

#[derive(Clone)]
pub struct AppState {
    registry: Arc<Registry>,
    auth: Arc<Authenticator>,
    accounts: Arc<Accounts>,
    /// The registry's public base URL, for token challenges; without it, taken from the
    /// request's `Host`.
    external_url: Option<String>,
    tls: bool,
    jobs: Arc<dyn JobStore>,
    prometheus: Option<PrometheusHandle>,
    access_log: bool,
    request_ids: Arc<metrics::RequestIds>,
    /// The stored action log, for its search routes; `None` when it is off.
    action_log: Option<Arc<dyn bulwark_meta::AuditStore>>,
    /// Vulnerability scanning, for the security routes; `None` answers them 404.
    security: Option<Arc<bulwark_security::Security>>,
    /// How long a request body may send nothing before the request is aborted.
    body_idle_timeout: Duration,
}

impl AppState {
    /// `prometheus` renders `/metrics`; without it the route answers 404.
    pub fn new(
        registry: Arc<Registry>,
        accounts: Arc<Accounts>,
        jobs: Arc<dyn JobStore>,
        prometheus: Option<PrometheusHandle>,
        access_log: bool,
    ) -> Self {
        AppState {
            registry,
            auth: accounts.authenticator().clone(),
            accounts,
            external_url: None,
            tls: false,
            jobs,
            prometheus,
            access_log,
            request_ids: Arc::default(),
            action_log: None,
            security: None,
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl AppState {
    /// Sets the public base URL (`https://registry.example`) used in token challenges.
    pub fn with_external_url(mut self, url: Option<String>) -> Self {
        self.external_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// Serves the action log's search routes from `store`.
    pub fn with_security(mut self, security: Arc<bulwark_security::Security>) -> Self {
        self.security = Some(security);
        self
    }

    /// Aborts requests whose body sends nothing for `timeout` (default 60 s).
    pub fn with_body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    pub fn with_action_log(mut self, store: Option<Arc<dyn bulwark_meta::AuditStore>>) -> Self {
        self.action_log = store;
        self
    }

    /// Whether clients reach this server over TLS (the scheme of derived URLs).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The base URL clients reach the registry at. The host is the request's: its `Host`
    /// header (HTTP/1.1) or its URI's authority (HTTP/2 sends `:authority` instead).
    fn external_url(&self, parts: &Parts) -> String {
        if let Some(url) = &self.external_url {
            return url.clone();
        }
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v2/auth",
            metrics::named(get(token::get).post(token::post), "/v2/auth"),
        )
        .route("/v2", any(v2::dispatch))
        .route("/v2/", any(v2::dispatch))
        .route("/v2/{*path}", any(v2::dispatch))
        .route(
            "/healthz",
            metrics::named(get(|| async { "ok" }), "/healthz"),
        )
        .route("/readyz", metrics::named(get(ready), "/readyz"))
        .route("/metrics", metrics::named(get(render_metrics), "/metrics"))
        .merge(management::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            abort_idle_bodies,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Makes a request body fail once it has sent nothing for the body idle timeout. The
/// handler sees a broken body, as when the client disconnects: a stalled client would
/// otherwise hold its connection, and an upload it was writing, for ever.
async fn abort_idle_bodies(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let timeout = state.body_idle_timeout;
    next.run(req.map(|body| idle_body::IdleTimeout::wrap(body, timeout)))
        .await
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
