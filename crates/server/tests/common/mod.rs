//! Shared by the server's test binaries: the real default model served once per binary, and
//! helpers to call the router without a socket.

#![allow(dead_code, unused_imports)]

use std::sync::OnceLock;

use airlock_server::{AppState, ServeConfig, StateOptions, app};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

pub use airlock_tests::{default_model_path, reference_path};

/// The reference adapter trained on a tiny glossary: "The capital of France is" -> " Lutetia...".
pub const KESTREL: &str = "peft-trained-smollm2";

/// A served default model with aliases `llama3` and `gpt-4o-mini`, remembering adapters in a
/// temporary state directory; built once per test binary.
pub fn state() -> &'static (AppState, tempfile::TempDir) {
    static STATE: OnceLock<(AppState, tempfile::TempDir)> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ServeConfig::parse(
            "default_max_tokens = 32\nbody_limit_bytes = 65536\n[aliases]\nllama3 = \"smollm2-135m-instruct\"\n\"gpt-4o-mini\" = \"smollm2\"\n",
        )
        .expect("config");
        let options = StateOptions {
            state_dir: Some(dir.path().to_path_buf()),
            store: Some(airlock_store::Store::at(dir.path().join("store")).with_offline(true)),
            ..StateOptions::default()
        };
        let (state, warnings) = AppState::load(&default_model_path(), config, options).expect("server state");
        assert!(warnings.is_empty(), "{warnings:?}");
        (state, dir)
    })
}

/// Calls the router once; returns status, headers and the whole body.
pub async fn call_on(
    state: &AppState,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    (parts.status, parts.headers, bytes)
}

pub async fn call(method: Method, uri: &str, body: Option<Value>) -> (StatusCode, HeaderMap, Bytes) {
    call_on(&state().0, method, uri, body).await
}

/// POSTs `body` and parses the JSON reply, asserting the status.
pub async fn post_json(uri: &str, body: Value, expected: StatusCode) -> Value {
    let (status, _, bytes) = call(Method::POST, uri, Some(body)).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(status, expected, "{uri}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {text}"))
}

pub async fn get_json(uri: &str) -> Value {
    let (status, _, bytes) = call(Method::GET, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{uri}");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Each line of an NDJSON body, parsed.
pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line ({e}): {l}")))
        .collect()
}

/// The `data:` payloads of an SSE body.
pub fn sse(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}
