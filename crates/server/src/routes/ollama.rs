//! Ollama's generation API: `POST /api/generate` and `POST /api/chat`, field for field
//! (<https://github.com/ollama/ollama/blob/main/docs/api.md>). NDJSON streaming unless
//! `"stream": false`; the final object carries `done_reason` and the counts and durations in
//! nanoseconds.
//!
//! Differences from Ollama, by design: `template` (a Go template in Ollama) is accepted and
//! ignored: prompts are always rendered with the model's own Jinja chat template, or taken
//! verbatim with `raw`. `keep_alive` is accepted and ignored: the model stays loaded. Sampling is
//! greedy unless a `temperature` is given (reproducible by default), with Ollama's `repeat_penalty`
//! default of 1.1 ([`ollama_defaults`]). `suffix` is ignored.
//! `images` and `tools` are refused with 400: the served models have neither.

use std::time::Instant;

use airlock_constrain::Constraint;
use airlock_engine::{Finished, Sampling, Token};
use airlock_tokenizer::ChatMessage;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::clock::now_rfc3339;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::observe::{RequestLog, with_log};
use crate::request::{self, AdapterRef, Generation, Running, SamplingParams};
use crate::state::AppState;
use crate::stream::{self, Step};

/// Ollama's `options` (the ones that mean something here; others are ignored, as Ollama does).
#[derive(Debug, Default, Deserialize)]
pub struct OllamaOptions {
    num_predict: Option<i64>,
    num_ctx: Option<i64>,
    temperature: Option<f32>,
    top_k: Option<i64>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    seed: Option<i64>,
    stop: Option<Vec<String>>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
}

impl OllamaOptions {
    fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct GenerateBody {
    model: Option<String>,
    prompt: Option<String>,
    system: Option<String>,
    // `template` is not read: see the module docs.
    context: Option<Vec<i64>>,
    stream: Option<bool>,
    raw: Option<bool>,
    format: Option<Value>,
    options: Option<OllamaOptions>,
    keep_alive: Option<Value>,
    images: Option<Vec<Value>>,
    adapters: Option<Vec<AdapterRef>>,
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct ChatBody {
    model: Option<String>,
    messages: Option<Vec<OllamaMessage>>,
    tools: Option<Vec<Value>>,
    stream: Option<bool>,
    format: Option<Value>,
    options: Option<OllamaOptions>,
    keep_alive: Option<Value>,
    adapters: Option<Vec<AdapterRef>>,
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct OllamaMessage {
    role: String,
    content: Option<String>,
    images: Option<Vec<Value>>,
}

/// Ollama's sampling defaults where they differ from the engine's: its documented
/// `repeat_penalty` of 1.1, which keeps small models from looping (notably inside JSON strings).
/// The temperature stays the engine's greedy default, so answers are reproducible.
pub fn ollama_defaults() -> Sampling {
    Sampling {
        repeat_penalty: 1.1,
        ..Sampling::default()
    }
}

/// `format`: absent, `""` or `null` = free text; `"json"` = any JSON object; an object = a schema.
pub fn format_constraint(format: Option<Value>) -> Result<Option<Constraint>, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Constraint::JsonObject)),
        Some(schema @ Value::Object(_)) => Ok(Some(Constraint::JsonSchema(schema))),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format must be \"json\" or a JSON Schema object, not {other}"
        ))),
    }
}

fn no_images(images: Option<&Vec<Value>>) -> Result<(), ApiError> {
    match images {
        Some(images) if !images.is_empty() => Err(ApiError::BadRequest("this model does not accept images".into())),
        _ => Ok(()),
    }
}

/// What is common to generate and chat once the prompt is tokenized.
struct Common {
    model: String,
    options: OllamaOptions,
    format: Option<Value>,
    adapters: Vec<AdapterRef>,
    logprobs: bool,
    top_logprobs: Option<i64>,
}

impl Common {
    fn resolve(self, state: &AppState, prompt: Vec<u32>) -> Result<Generation, ApiError> {
        let adapters = state.resolve_adapters(&self.model, &self.adapters)?;
        let context = state.model.context_length;
        let top = request::top_logprobs(self.top_logprobs)?;
        Ok(Generation {
            max_tokens: request::max_tokens(state, self.options.num_predict, self.options.num_ctx, prompt.len())?,
            sampling: self.options.sampling().resolve(context, &ollama_defaults())?,
            stop: request::stops(self.options.stop.unwrap_or_default())?,
            adapters,
            constraint: format_constraint(self.format)?,
            logprobs: (self.logprobs || self.top_logprobs.is_some()).then_some(top),
            prompt,
        })
    }
}

/// The reply to a request with nothing to generate: Ollama loads (or unloads) the model.
fn load_reply(model: &str, keep_alive: Option<&Value>, chat: bool) -> Response {
    let unload = keep_alive.is_some_and(|k| k.as_i64() == Some(0) || k.as_str() == Some("0"));
    let mut body = json!({
        "model": model,
        "created_at": now_rfc3339(),
        "done": true,
        "done_reason": if unload { "unload" } else { "load" },
    });
    if chat {
        body["message"] = json!({"role": "assistant", "content": ""});
    } else {
        body["response"] = json!("");
    }
    Json(body).into_response()
}

pub async fn generate(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GenerateBody>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let model = body.model.unwrap_or_default();
    no_images(body.images.as_ref())?;
    let prompt_text = body.prompt.unwrap_or_default();
    let context = body.context.unwrap_or_default();
    state.resolve_model(&model)?;
    if prompt_text.is_empty() && context.is_empty() {
        return Ok(load_reply(&model, body.keep_alive.as_ref(), false));
    }
    let tokenizer = state.tokenizer();
    let vocab = tokenizer.vocab_size() as i64;
    let mut prompt: Vec<u32> = context
        .iter()
        .map(|&t| {
            (0..vocab)
                .contains(&t)
                .then_some(t as u32)
                .ok_or_else(|| ApiError::BadRequest(format!("context holds {t}, which is not a token id")))
        })
        .collect::<Result<_, _>>()?;
    if !prompt_text.is_empty() {
        if body.raw.unwrap_or(false) {
            prompt.extend(if context.is_empty() {
                tokenizer.prompt_tokens(&prompt_text)?
            } else {
                tokenizer.encode_with_special(&prompt_text)?
            });
        } else {
            let mut messages = Vec::new();
            if let Some(system) = body.system.filter(|s| !s.is_empty()) {
                messages.push(ChatMessage::new("system", system));
            }
            messages.push(ChatMessage::new("user", prompt_text));
            prompt.extend(tokenizer.apply_chat_template(&messages, true)?);
        }
    }
    let common = Common {
        model: model.clone(),
        options: body.options.unwrap_or_default(),
        format: body.format,
        adapters: body.adapters.unwrap_or_default(),
        logprobs: body.logprobs.unwrap_or(false),
        top_logprobs: body.top_logprobs,
    };
    let generation = common.resolve(&state, prompt)?;
    let running = request::submit(&state, generation, received).await?;
    respond(state, model, running, body.stream.unwrap_or(true), Kind::Generate).await
}

pub async fn chat(State(state): State<AppState>, ApiJson(body): ApiJson<ChatBody>) -> Result<Response, ApiError> {
    let received = Instant::now();
    let model = body.model.unwrap_or_default();
    if body.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::BadRequest("this model does not support tools".into()));
    }
    state.resolve_model(&model)?;
    let messages = body.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(load_reply(&model, body.keep_alive.as_ref(), true));
    }
    let mut chat = Vec::with_capacity(messages.len());
    for m in messages {
        no_images(m.images.as_ref())?;
        chat.push(ChatMessage::new(m.role, m.content.unwrap_or_default()));
    }
    let prompt = state.tokenizer().apply_chat_template(&chat, true)?;
    let common = Common {
        model: model.clone(),
        options: body.options.unwrap_or_default(),
        format: body.format,
        adapters: body.adapters.unwrap_or_default(),
        logprobs: body.logprobs.unwrap_or(false),
        top_logprobs: body.top_logprobs,
    };
    let generation = common.resolve(&state, prompt)?;
    let running = request::submit(&state, generation, received).await?;
    respond(state, model, running, body.stream.unwrap_or(true), Kind::Chat).await
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Generate,
    Chat,
}

/// `{model, created_at, response | message, done: false}` with `text`.
fn chunk(kind: Kind, model: &str, text: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("model".into(), json!(model));
    m.insert("created_at".into(), json!(now_rfc3339()));
    match kind {
        Kind::Generate => m.insert("response".into(), json!(text)),
        Kind::Chat => m.insert("message".into(), json!({"role": "assistant", "content": text})),
    };
    m.insert("done".into(), json!(false));
    m
}

/// The final object's fields (durations in nanoseconds).
fn finish(m: &mut Map<String, Value>, finished: &Finished, received: Instant) {
    let ns = |d: std::time::Duration| json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    m.insert("done".into(), json!(true));
    m.insert("done_reason".into(), json!(finished.reason.as_str()));
    m.insert("total_duration".into(), ns(received.elapsed()));
    m.insert("load_duration".into(), json!(0));
    m.insert("prompt_eval_count".into(), json!(finished.prompt_tokens));
    m.insert("prompt_eval_duration".into(), ns(finished.prompt_duration));
    m.insert("eval_count".into(), json!(finished.completion_tokens));
    m.insert("eval_duration".into(), ns(finished.generate_duration));
}

/// Ids of generated tokens that are text (not the end-of-generation token).
fn context_ids(state: &AppState, prompt: &[u32], tokens: impl Iterator<Item = u32>) -> Vec<u32> {
    let tokenizer = state.tokenizer();
    prompt
        .iter()
        .copied()
        .chain(tokens.filter(|&t| !tokenizer.is_eog(t)))
        .collect()
}

async fn respond(
    state: AppState,
    model: String,
    running: Running,
    streaming: bool,
    kind: Kind,
) -> Result<Response, ApiError> {
    let Running {
        events,
        prompt,
        received,
    } = running;
    if !streaming {
        let collected = stream::collect(events).await?;
        state.metrics.record_generation(received.elapsed());
        let mut m = chunk(kind, &model, &collected.text);
        let entries: Vec<Value> = collected
            .tokens
            .iter()
            .filter_map(|t| stream::logprob_entry(state.tokenizer(), t))
            .collect();
        if !entries.is_empty() {
            m.insert("logprobs".into(), json!(entries));
        }
        finish(&mut m, &collected.finished, received);
        if matches!(kind, Kind::Generate) {
            let ids = context_ids(&state, &prompt, collected.tokens.iter().map(|t| t.id));
            m.insert("context".into(), json!(ids));
        }
        let log = RequestLog {
            model,
            prompt_tokens: Some(collected.finished.prompt_tokens),
            completion_tokens: Some(collected.finished.completion_tokens),
        };
        return Ok(with_log(Json(Value::Object(m)).into_response(), log));
    }
    let log = RequestLog {
        model: model.clone(),
        ..RequestLog::default()
    };
    let mut generated: Vec<u32> = Vec::new();
    let lines = stream::steps(events).filter_map(move |step| {
        let line = match step {
            Ok(Step::Token(token)) => token_line(&state, kind, &model, &token, &mut generated),
            Ok(Step::Done(finished)) => {
                state.metrics.record_generation(received.elapsed());
                let mut m = chunk(kind, &model, "");
                finish(&mut m, &finished, received);
                if matches!(kind, Kind::Generate) {
                    m.insert(
                        "context".into(),
                        json!(context_ids(&state, &prompt, generated.iter().copied())),
                    );
                }
                Some(Value::Object(m))
            }
            Err(e) => Some(e.body()),
        };
        std::future::ready(line)
    });
    Ok(with_log(stream::ndjson(lines), log))
}

/// A chunk for one token; `None` when it carries neither text nor log-probabilities.
fn token_line(state: &AppState, kind: Kind, model: &str, token: &Token, generated: &mut Vec<u32>) -> Option<Value> {
    generated.push(token.id);
    let entry = stream::logprob_entry(state.tokenizer(), token);
    if token.text.is_empty() && entry.is_none() {
        return None;
    }
    let mut m = chunk(kind, model, &token.text);
    if let Some(entry) = entry {
        m.insert("logprobs".into(), json!([entry]));
    }
    Some(Value::Object(m))
}
