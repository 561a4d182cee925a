//! Ollama's model routes: `/api/tags`, `/api/show`, `/api/ps`, `/api/version`, and
//! `/api/pull` / `/api/delete` on the local model store. Each loaded adapter (and each alias)
//! is listed as a model of its own name whose parent is the base.

use std::sync::Arc;

use airlock_store::StoreError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::registry::LoadedAdapter;
use crate::state::AppState;

/// The version `/api/version` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/api/show`, `/api/pull` and `/api/delete` take `model` (or the older `name`).
#[derive(Debug, Deserialize)]
pub struct ModelBody {
    model: Option<String>,
    name: Option<String>,
    stream: Option<bool>,
}

impl ModelBody {
    fn name(&self) -> Result<&str, ApiError> {
        self.model
            .as_deref()
            .or(self.name.as_deref())
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest("model is required".into()))
    }
}

/// `name:latest` unless the name already has a tag.
fn tagged(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn details(state: &AppState, adapter: Option<&LoadedAdapter>) -> Value {
    let m = &state.model;
    json!({
        "parent_model": if adapter.is_some() { m.name.clone() } else { String::new() },
        "format": "gguf",
        "family": m.family,
        "families": [m.family],
        "parameter_size": m.parameter_size,
        "quantization_level": m.quantization_level,
    })
}

/// One entry of `/api/tags` or `/api/ps`.
fn entry(state: &AppState, name: &str, adapter: Option<&Arc<LoadedAdapter>>) -> Value {
    let (size, digest, modified) = match adapter {
        Some(a) => (a.size, a.sha256.clone(), a.loaded_at),
        None => (state.model.size, state.model.sha256.clone(), state.model.modified_at),
    };
    json!({
        "name": tagged(name),
        "model": tagged(name),
        "modified_at": rfc3339(modified, 0),
        "size": size,
        "digest": digest,
        "details": details(state, adapter.map(AsRef::as_ref)),
    })
}

pub async fn tags(State(state): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = state
        .model_names()
        .iter()
        .map(|(name, adapter)| entry(&state, name, adapter.as_ref()))
        .collect();
    Json(json!({"models": models}))
}

pub async fn ps(State(state): State<AppState>) -> Json<Value> {
    let far_future = rfc3339(4_102_444_800, 0); // loaded until the server stops
    let models: Vec<Value> = state
        .model_names()
        .iter()
        .map(|(name, adapter)| {
            let mut e = entry(&state, name, adapter.as_ref());
            e["expires_at"] = json!(far_future);
            e["size_vram"] = json!(0);
            e["context_length"] = json!(state.model.context_length);
            e
        })
        .collect();
    Json(json!({"models": models}))
}

pub async fn version() -> Json<Value> {
    Json(json!({"version": VERSION}))
}

pub async fn show(State(state): State<AppState>, ApiJson(body): ApiJson<ModelBody>) -> Result<Json<Value>, ApiError> {
    let name = body.name()?;
    state.resolve_model(name)?;
    let m = &state.model;
    let adapter = state
        .model_names()
        .into_iter()
        .find(|(n, _)| crate::config::normalize_name(n) == crate::config::normalize_name(name))
        .and_then(|(_, a)| a);
    let mut modelfile = format!("FROM {}\n", m.path.display());
    if let Some(a) = &adapter {
        modelfile.push_str(&format!("ADAPTER {}\n", a.path.display()));
    }
    let mut info = serde_json::Map::new();
    for (k, v) in &m.metadata {
        info.insert(k.clone(), v.clone());
    }
    let mut reply = json!({
        "modelfile": modelfile,
        "parameters": "",
        "template": m.template.clone().unwrap_or_default(),
        "details": details(&state, adapter.as_deref()),
        "model_info": info,
        "capabilities": ["completion"],
        "modified_at": rfc3339(m.modified_at, 0),
    });
    if let Some(a) = adapter {
        reply["adapter"] = json!(*a);
    }
    Ok(Json(reply))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownModel { name, .. } | StoreError::NotFound { name } => ApiError::ModelNotFound(name),
        other => ApiError::Store(other.to_string()),
    }
}

fn store(state: &AppState) -> Result<airlock_store::Store, ApiError> {
    state
        .store
        .clone()
        .ok_or_else(|| ApiError::BadRequest("this server has no model store".into()))
}

/// Fetches a model into the store the way `airlock pull` does (off the async runtime).
pub async fn pull(State(state): State<AppState>, ApiJson(body): ApiJson<ModelBody>) -> Result<Response, ApiError> {
    let name = body.name()?.to_string();
    let store = store(&state)?;
    let path = tokio::task::spawn_blocking(move || store.pull(&name, false))
        .await?
        .map_err(store_error)?;
    let digest = airlock_store::sha256_file(&path).map(|(d, _)| d).unwrap_or_default();
    let statuses = vec![
        json!({"status": "pulling manifest"}),
        json!({"status": "verifying sha256 digest", "digest": digest}),
        json!({"status": "success"}),
    ];
    if body.stream.unwrap_or(true) {
        Ok(crate::stream::ndjson(stream::iter(statuses)))
    } else {
        Ok(Json(json!({"status": "success"})).into_response())
    }
}

/// Removes a model from the store; the model being served cannot be removed.
pub async fn delete(State(state): State<AppState>, ApiJson(body): ApiJson<ModelBody>) -> Result<Json<Value>, ApiError> {
    let name = body.name()?.to_string();
    if state.resolve_model(&name).is_ok_and(|t| t.adapters.is_empty()) {
        return Err(ApiError::Conflict(format!("'{name}' is the model being served")));
    }
    if state.adapters.get(&name).is_some() {
        return Err(ApiError::Conflict(format!(
            "'{name}' is an adapter: unload it with DELETE /api/adapters/{name}"
        )));
    }
    let store = store(&state)?;
    tokio::task::spawn_blocking(move || store.remove(&name))
        .await?
        .map_err(store_error)?;
    Ok(Json(json!({"status": "success"})))
}
