//! Middleware around every route: the API-key check, and one structured log line plus metrics
//! per request (method, path, status, duration, model, tokens; never the prompt).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// What a handler tells the request log about its request (set as a response extension).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    pub model: String,
    pub prompt_tokens: Option<usize>,
    pub completion_tokens: Option<usize>,
}

/// Adds `log` to a response.
pub fn with_log(mut response: Response, log: RequestLog) -> Response {
    response.extensions_mut().insert(log);
    response
}

/// Requires `Authorization: Bearer <key>` when the server has a key, except on `/health`.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key
        && request.uri().path() != "/health"
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Records metrics and writes one JSON log line to stderr for each request.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record_request(&route, status, elapsed);
    let log = response.extensions().get::<RequestLog>().cloned().unwrap_or_default();
    if route != "/health" && route != "/metrics" {
        eprintln!(
            "{}",
            serde_json::json!({
                "ts": crate::clock::now_rfc3339(),
                "method": method.as_str(),
                "path": path,
                "status": status,
                "duration_ms": elapsed.as_secs_f64() * 1e3,
                "model": log.model,
                "prompt_tokens": log.prompt_tokens,
                "completion_tokens": log.completion_tokens,
            })
        );
    }
    response
}
