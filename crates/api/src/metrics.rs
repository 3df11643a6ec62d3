//! Per-request telemetry: a request id, an access log line, and Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::MethodRouter;
use tracing::Instrument;

use crate::AppState;

/// The route a response answered, set by the handler for labelling metrics.
#[derive(Clone, Copy)]
pub struct RouteName(pub &'static str);

/// Labels the responses of `router` with its path template `name`, for metrics and the
/// access log (requests no route names are labelled `other`).
pub fn named<S>(router: MethodRouter<S>, name: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(axum::middleware::map_response(
        move |mut resp: Response| async move {
            resp.extensions_mut().insert(RouteName(name));
            resp
        },
    ))
}

const REQUEST_ID: &str = "x-request-id";

/// Request ids: a random per-process prefix and a counter, unique and cheap.
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| state.request_ids.next());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let bytes_in = content_length(req.headers());
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = next.run(req).instrument(span.clone()).await;

    let route = resp
        .extensions()
        .get::<RouteName>()
        .map_or("other", |r| r.0);
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    let bytes_out = content_length(resp.headers());
    let labels = [("route", route), ("method", method_label(&method))];
    metrics::counter!(
        "bulwark_http_requests_total",
        "route" => route, "method" => method_label(&method), "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("bulwark_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    metrics::counter!("bulwark_http_request_bytes_total", &labels).increment(bytes_in);
    metrics::counter!("bulwark_http_response_bytes_total", &labels).increment(bytes_out);
    if state.access_log {
        span.in_scope(|| {
            tracing::info!(
                target: "bulwark::access",
                %method, path, status, route,
                ms = elapsed.as_secs_f64() * 1e3,
                bytes_in, bytes_out,
            )
        });
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
