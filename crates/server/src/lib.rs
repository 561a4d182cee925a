//! airlock's HTTP server: Ollama's and OpenAI's APIs over one base model with hot-swappable
//! LoRA adapters and constrained (JSON / JSON Schema) decoding, plus adapter management,
//! `/health` and Prometheus `/metrics`.
//!
//! # Design decisions
//!
//! * **The router is a function.** [`app`] builds it from an [`AppState`]; tests drive it with
//!   `tower::ServiceExt::oneshot` without a socket, `airlock serve` puts it on a listener.
//! * **Parse, then resolve.** Each route reads its body as that API writes it (optional fields,
//!   its names) and resolves it into one [`request::Generation`]; defaults live in the engine's
//!   `Sampling` and in [`ServeConfig`].
//! * **One error type.** Every failure is an [`ApiError`]; one exhaustive match gives its status.
//! * **Models are names.** The base model answers to its store name, aliases and `name:tag`;
//!   each loaded adapter is a model of its own name (the base plus that adapter); the serving
//!   config adds aliases. A request may mix more adapters with `"adapters": [{name, scale}]`.
//! * **The server never touches tensors.** It resolves requests and hands them to the engine,
//!   whose single worker batches rows with different adapters and constraints together.
//! * **Disconnects cancel.** Response bodies own the engine's event receiver; when a client goes
//!   away the body is dropped, and with it the receiver, which ends the row.

mod clock;
pub mod config;
pub mod error;
mod extract;
pub mod metrics;
pub mod model_info;
mod observe;
pub mod registry;
pub mod request;
mod routes;
pub mod state;
mod stream;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use config::{ConfigError, ServeConfig};
pub use error::ApiError;
pub use routes::models::VERSION;
pub use state::{AppState, StartError, StateOptions};

/// The whole HTTP surface over `state`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .route("/", get(routes::system::root).head(routes::system::root))
        .route("/health", get(routes::system::health))
        .route("/metrics", get(routes::system::metrics))
        // Ollama
        .route("/api/generate", post(routes::ollama::generate))
        .route("/api/chat", post(routes::ollama::chat))
        .route("/api/tags", get(routes::models::tags))
        .route("/api/show", post(routes::models::show))
        .route("/api/ps", get(routes::models::ps))
        .route("/api/version", get(routes::models::version))
        .route("/api/pull", post(routes::models::pull))
        .route("/api/delete", delete(routes::models::delete))
        // Adapters (ours and vLLM's)
        .route(
            "/api/adapters",
            get(routes::adapters::list).post(routes::adapters::create),
        )
        .route("/api/adapters/{name}", delete(routes::adapters::remove))
        .route("/v1/load_lora_adapter", post(routes::adapters::vllm_load))
        .route("/v1/unload_lora_adapter", post(routes::adapters::vllm_unload))
        // OpenAI
        .route("/v1/models", get(routes::openai::list_models))
        .route("/v1/models/{model}", get(routes::openai::get_model))
        .route("/v1/chat/completions", post(routes::openai::chat_completions))
        .route("/v1/completions", post(routes::openai::completions))
        .fallback(routes::system::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::authorize))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::observe))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then lets open responses finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
