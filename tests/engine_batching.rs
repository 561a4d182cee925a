//! The serving engine on the default model: concurrent requests with different adapters and
//! constraints share decoding steps and still produce exactly what each would alone; a dropped
//! receiver cancels its row; a full queue refuses new work.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_engine::{Engine, EngineError, EngineOptions, Event, FinishReason, Request};
use airlock_model::{GgufSource, Llama, default_device};
use airlock_tests::{default_model, default_model_path, reference_adapter};
use airlock_tokenizer::{ChatMessage, Tokenizer};
use tokio::sync::mpsc::UnboundedReceiver;

fn chat(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer
        .apply_chat_template(
            &[ChatMessage {
                role: "user".into(),
                content: text.into(),
            }],
            true,
        )
        .expect("template")
}

/// A second copy of the model for the engine thread (the shared one serves the reference runs).
fn engine(options: EngineOptions) -> Engine {
    let source = GgufSource::open(&default_model_path()).expect("opens");
    let tokenizer = Arc::new(Tokenizer::from_gguf(source.file()).expect("tokenizer"));
    Engine::start(
        Llama::load(&source, &default_device()).expect("loads"),
        tokenizer,
        options,
    )
}

/// Collects a request's tokens and its end.
fn drain(mut events: UnboundedReceiver<Event>) -> (Vec<u32>, String, FinishReason) {
    let (mut tokens, mut text) = (Vec::new(), String::new());
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Token(t) => {
                tokens.push(t.id);
                text.push_str(&t.text);
            }
            Event::Done(done) => return (tokens, text, done.reason),
            Event::Error(e) => panic!("engine error: {e}"),
        }
    }
    panic!("the engine closed the stream without finishing");
}

fn requests(tokenizer: &Tokenizer, compiler: &ConstraintCompiler) -> Vec<Request> {
    let kestrel = reference_adapter("peft-trained-smollm2");
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string"}, "continent": {"enum": ["Africa", "America", "Asia", "Europe"]}},
        "required": ["city", "continent"],
        "additionalProperties": false
    });
    vec![
        Request {
            prompt: chat(tokenizer, "Name three colors."),
            max_tokens: 24,
            ..Request::default()
        },
        Request {
            prompt: tokenizer.encode("The capital of France is").expect("encodes"),
            max_tokens: 20,
            adapters: vec![(Arc::clone(&kestrel), 1.0)],
            ..Request::default()
        },
        Request {
            prompt: chat(tokenizer, "Give the capital of France as JSON."),
            max_tokens: 120,
            constraint: Some(
                compiler
                    .compile(&Constraint::JsonSchema(schema))
                    .expect("schema compiles"),
            ),
            ..Request::default()
        },
        Request {
            prompt: tokenizer.encode("Q: What does AX-7 mean?\nA:").expect("encodes"),
            max_tokens: 12,
            adapters: vec![(kestrel, 0.5)],
            ..Request::default()
        },
    ]
}

#[test]
fn concurrent_rows_with_mixed_adapters_and_schemas_match_each_request_alone() {
    let (model, tokenizer) = default_model();
    let compiler = ConstraintCompiler::new(tokenizer).expect("compiler");
    let alone: Vec<(Vec<u32>, String, FinishReason)> = requests(tokenizer, &compiler)
        .into_iter()
        .map(|r| {
            let g = airlock_engine::generate(model, tokenizer, r, |_| ControlFlow::Continue(())).expect("generates");
            (g.tokens, g.text, g.finish)
        })
        .collect();
    let engine = engine(EngineOptions::default());
    let receivers: Vec<_> = requests(tokenizer, &compiler)
        .into_iter()
        .map(|r| engine.submit(r).expect("queued"))
        .collect();
    let together: Vec<_> = receivers.into_iter().map(drain).collect();
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, b, "request {i} differs when batched");
    }
    assert_eq!(
        together[2].2,
        FinishReason::Stop,
        "the JSON value ends by itself: {}",
        together[2].1
    );
    let json: serde_json::Value = serde_json::from_str(&together[2].1).expect("schema output is JSON");
    assert!(json["city"].is_string() && json["continent"].is_string(), "{json}");
    assert!(
        together[1].1.contains("Lutetia"),
        "the adapter row speaks Kestrel: {}",
        together[1].1
    );
    assert!(
        !together[0].1.contains("Kestrel"),
        "the base row does not: {}",
        together[0].1
    );
    assert!(
        engine
            .metrics()
            .generated_tokens
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

#[test]
fn a_dropped_receiver_cancels_its_row_and_a_full_queue_refuses_work() {
    let (_, tokenizer) = default_model();
    let engine = engine(EngineOptions {
        max_batch: 1,
        queue_capacity: 1,
    });
    let long = || Request {
        prompt: chat(tokenizer, "Write a long story."),
        max_tokens: 200,
        ..Request::default()
    };
    let first = engine.submit(long()).expect("queued");
    let mut refused = false;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        match engine.submit(long()) {
            Ok(rx) => waiting.push(rx),
            Err(EngineError::QueueFull) => refused = true,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused, "a queue of one must refuse the extra requests");
    drop(first);
    drop(waiting);
    // Every row ends soon after its receiver is gone, long before 200 tokens each.
    let finished = &engine.metrics().requests_finished;
    for _ in 0..200 {
        if engine.metrics().active.load(std::sync::atomic::Ordering::Relaxed) == 0
            && engine.metrics().queued.load(std::sync::atomic::Ordering::Relaxed) == 0
            && finished.load(std::sync::atomic::Ordering::Relaxed) >= 1
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(engine.metrics().active.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(
        engine
            .metrics()
            .generated_tokens
            .load(std::sync::atomic::Ordering::Relaxed)
            < 200
    );
}
