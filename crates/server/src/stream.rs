//! From the engine's event channel to HTTP bodies: collecting a whole generation, or turning
//! it into a stream of steps framed as NDJSON (Ollama) or server-sent events (OpenAI).
//!
//! The body stream owns the event receiver, so when a client disconnects and hyper drops the
//! body, the receiver is dropped and the engine cancels the row at its next step.

use std::convert::Infallible;

use airlock_engine::{Event, Finished, Token};
use airlock_tokenizer::Tokenizer;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::{Stream, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;

/// One thing a generation produced.
#[derive(Debug)]
pub enum Step {
    Token(Token),
    Done(Finished),
}

/// A whole generation.
#[derive(Debug)]
pub struct Collected {
    pub text: String,
    pub tokens: Vec<Token>,
    pub finished: Finished,
}

fn closed() -> ApiError {
    ApiError::Internal("the engine closed a stream without finishing it".into())
}

/// Waits for the whole generation.
pub async fn collect(mut events: UnboundedReceiver<Event>) -> Result<Collected, ApiError> {
    let (mut text, mut tokens) = (String::new(), Vec::new());
    while let Some(event) = events.recv().await {
        match event {
            Event::Token(token) => {
                text.push_str(&token.text);
                tokens.push(token);
            }
            Event::Done(finished) => return Ok(Collected { text, tokens, finished }),
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(closed())
}

/// The generation as a stream that ends after `Done` or the first error.
pub fn steps(events: UnboundedReceiver<Event>) -> impl Stream<Item = Result<Step, ApiError>> + Send + 'static {
    stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        let item = match events.recv().await {
            Some(Event::Token(token)) => return Some((Ok(Step::Token(token)), Some(events))),
            Some(Event::Done(finished)) => Ok(Step::Done(finished)),
            Some(Event::Error(e)) => Err(e.into()),
            None => Err(closed()),
        };
        Some((item, None))
    })
}

fn streaming(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One JSON object per line (Ollama's streaming format).
pub fn ndjson(lines: impl Stream<Item = Value> + Send + 'static) -> Response {
    let body = lines.map(|v| {
        let mut line = v.to_string();
        line.push('\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    streaming(Body::from_stream(body), "application/x-ndjson")
}

/// Server-sent events, `data: <payload>\n\n` each (OpenAI's streaming format).
pub fn sse(events: impl Stream<Item = String> + Send + 'static) -> Response {
    let body = events.map(|payload| Ok::<_, Infallible>(Bytes::from(format!("data: {payload}\n\n"))));
    streaming(Body::from_stream(body), "text/event-stream")
}

/// A token's text for log-probability reports (lossy where a token is part of a character).
fn token_text(tokenizer: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tokenizer.token_bytes(id);
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// OpenAI's (and Ollama's) per-token entry: `{token, logprob, bytes, top_logprobs: [...]}`.
pub fn logprob_entry(tokenizer: &Tokenizer, token: &Token) -> Option<Value> {
    let lp = token.logprob.as_ref()?;
    let (text, bytes) = token_text(tokenizer, token.id);
    let top: Vec<Value> = lp
        .top
        .iter()
        .map(|&(id, logprob)| {
            let (text, bytes) = token_text(tokenizer, id);
            json!({"token": text, "logprob": logprob, "bytes": bytes})
        })
        .collect();
    Some(json!({"token": text, "logprob": lp.logprob, "bytes": bytes, "top_logprobs": top}))
}

/// The legacy completions format: `{tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}`.
pub fn legacy_logprobs(tokenizer: &Tokenizer, tokens: &[Token], start_offset: usize) -> Value {
    let mut offset = start_offset;
    let (mut texts, mut lps, mut tops, mut offsets) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for token in tokens {
        let Some(lp) = &token.logprob else { continue };
        let (text, _) = token_text(tokenizer, token.id);
        offsets.push(offset);
        offset += token.text.len();
        texts.push(text);
        lps.push(lp.logprob);
        let top: serde_json::Map<String, Value> = lp
            .top
            .iter()
            .map(|&(id, l)| (token_text(tokenizer, id).0, json!(l)))
            .collect();
        tops.push(Value::Object(top));
    }
    json!({"tokens": texts, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}
