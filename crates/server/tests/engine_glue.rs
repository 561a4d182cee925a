//! The server in front of a deliberately small engine (one row, a queue of one) with an API
//! key: a full queue answers 503 with Retry-After, a client that goes away cancels its row, and
//! every route but /health needs the key.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use airlock_engine::EngineOptions;
use airlock_server::{AppState, ServeConfig, StateOptions, app};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{call_on, default_model_path};
use serde_json::json;
use tower::ServiceExt;

const KEY: &str = "test-key";

fn small() -> &'static AppState {
    static STATE: OnceLock<AppState> = OnceLock::new();
    STATE.get_or_init(|| {
        let config = ServeConfig {
            engine: EngineOptions {
                max_batch: 1,
                queue_capacity: 1,
            },
            ..ServeConfig::default()
        };
        let options = StateOptions {
            api_key: Some(KEY.into()),
            ..StateOptions::default()
        };
        AppState::load(&default_model_path(), config, options).expect("state").0
    })
}

fn long_request() -> Request<Body> {
    let body = json!({"model": "smollm2", "prompt": "Write a long story.", "options": {"num_predict": 400}});
    Request::builder()
        .method(Method::POST)
        .uri("/api/generate")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn wait_until_idle(state: &AppState) {
    for _ in 0..400 {
        let m = state.engine.metrics();
        if m.active.load(Ordering::Relaxed) == 0 && m.queued.load(Ordering::Relaxed) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the engine did not become idle");
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after_and_dropped_streams_cancel_their_rows() {
    let state = small();
    wait_until_idle(state).await;
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let response = app(state.clone()).oneshot(long_request()).await.expect("infallible");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        held.push(response); // streaming bodies, unread: their rows stay alive
    }
    let refused = refused.expect("a queue of one must refuse a third concurrent request");
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let generated_before = state.engine.metrics().generated_tokens.load(Ordering::Relaxed);
    drop(held); // the clients go away
    wait_until_idle(state).await;
    let generated = state.engine.metrics().generated_tokens.load(Ordering::Relaxed) - generated_before;
    assert!(
        generated < 400,
        "dropped streams must stop generating, got {generated} more tokens"
    );
}

#[tokio::test]
async fn every_route_but_health_needs_the_api_key() {
    let state = small();
    let (status, _, _) = call_on(state, Method::GET, "/api/tags", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call_on(state, Method::GET, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::builder()
        .uri("/api/tags")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request = Request::builder()
        .uri("/api/tags")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::empty())
        .expect("request");
    let response = app(state.clone()).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}
