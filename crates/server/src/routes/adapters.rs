//! Adapter management while serving: `GET/POST /api/adapters`, `DELETE /api/adapters/{name}`,
//! and vLLM's `POST /v1/load_lora_adapter` / `/v1/unload_lora_adapter`. Loading reads and
//! checks files on a blocking thread; requests in flight are never disturbed (they hold their
//! own `Arc` of the weights).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::normalize_name;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::registry::{LoadedAdapter, Origin};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct LoadBody {
    name: String,
    path: PathBuf,
    /// When given, the weights file must hash to this.
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VllmLoadBody {
    lora_name: String,
    lora_path: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct VllmUnloadBody {
    lora_name: String,
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let adapters: Vec<Value> = state.adapters.list().iter().map(|a| json!(**a)).collect();
    Json(json!({"adapters": adapters}))
}

/// Loads `path` as `name` off the async runtime; a name the base model or an alias already
/// answers to is refused.
async fn load(state: &AppState, name: String, path: PathBuf, sha256: Option<String>) -> Result<Value, ApiError> {
    let key = normalize_name(&name);
    if state.config.aliases.contains_key(&key) || state.resolve_model(&key).is_ok_and(|t| t.adapters.is_empty()) {
        return Err(ApiError::Conflict(format!("'{name}' is already the name of a model")));
    }
    let worker = state.clone();
    let loaded =
        tokio::task::spawn_blocking(move || worker.adapters.load(&name, &path, sha256.as_deref(), Origin::Api)).await?;
    let counter = match &loaded {
        Ok(_) => &state.metrics.adapter_loads,
        Err(_) => &state.metrics.adapter_load_failures,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let loaded: std::sync::Arc<LoadedAdapter> = loaded?;
    Ok(json!(*loaded))
}

async fn unload(state: &AppState, name: String) -> Result<Value, ApiError> {
    let worker = state.clone();
    let removed = tokio::task::spawn_blocking(move || worker.adapters.unload(&name)).await??;
    state.metrics.adapter_unloads.fetch_add(1, Ordering::Relaxed);
    Ok(json!({"status": "unloaded", "name": removed.name}))
}

pub async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<LoadBody>) -> Result<Json<Value>, ApiError> {
    Ok(Json(load(&state, body.name, body.path, body.sha256).await?))
}

pub async fn remove(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(unload(&state, name).await?))
}

pub async fn vllm_load(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VllmLoadBody>,
) -> Result<String, ApiError> {
    let name = body.lora_name.clone();
    load(&state, body.lora_name, body.lora_path, None).await?;
    Ok(format!("Success: LoRA adapter '{name}' added successfully."))
}

pub async fn vllm_unload(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VllmUnloadBody>,
) -> Result<String, ApiError> {
    let name = body.lora_name.clone();
    unload(&state, body.lora_name).await?;
    Ok(format!("Success: LoRA adapter '{name}' removed successfully."))
}
