//! `GET /` (the liveness text Ollama's clients look for), `/health`, `/metrics`, and the JSON
//! 404 for unknown routes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn root() -> &'static str {
    "airlock is running"
}

/// 200 while the engine runs, 503 once it has stopped.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let running = state.engine.is_running();
    let status = if running {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if running { "ok" } else { "engine stopped" },
        "model": state.model.name,
        "adapters": state.adapters.len(),
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    (status, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(state.engine.metrics(), state.adapters.len());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_string())
}
