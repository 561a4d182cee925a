//! OpenAI's API: `GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/completions`, with
//! SSE streaming ending in `data: [DONE]`, `usage` (in the last chunk when
//! `stream_options.include_usage`), `finish_reason`, `response_format` (`json_object`,
//! `json_schema`), and `logprobs` / `top_logprobs` as OpenAI defines them (chat: per-token entries
//! under `logprobs.content`; completions: the legacy `tokens` / `token_logprobs` lists). vLLM's
//! extra sampling fields (`top_k`, `min_p`, `repetition_penalty`) are accepted too.

use std::time::Instant;

use airlock_constrain::Constraint;
use airlock_engine::{FinishReason, Finished, Sampling};
use airlock_tokenizer::ChatMessage;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::unix_now;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::observe::{RequestLog, with_log};
use crate::request::{self, AdapterRef, Generation, Running, SamplingParams};
use crate::state::AppState;
use crate::stream::{self, Step};

/// OpenAI's default `max_tokens` for the legacy completions endpoint.
const COMPLETIONS_DEFAULT_MAX_TOKENS: i64 = 16;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaSpec },
}

#[derive(Debug, Deserialize)]
struct JsonSchemaSpec {
    schema: Option<Value>,
    // `name`, `description` and `strict` are accepted and not needed: the schema is always enforced.
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Fields both endpoints share.
#[derive(Debug, Deserialize)]
struct CommonBody {
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    n: Option<i64>,
    stop: Option<OneOrMany>,
    seed: Option<i64>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    response_format: Option<ResponseFormat>,
    adapters: Option<Vec<AdapterRef>>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
}

#[derive(Debug, Deserialize)]
pub struct ChatBody {
    #[serde(flatten)]
    common: CommonBody,
    messages: Option<Vec<Message>>,
    max_completion_tokens: Option<i64>,
    logprobs: Option<bool>,
    top_logprobs: Option<i64>,
    tools: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CompletionBody {
    #[serde(flatten)]
    common: CommonBody,
    prompt: Option<OneOrMany>,
    logprobs: Option<i64>,
    echo: Option<bool>,
}

impl Content {
    fn text(self) -> Result<String, ApiError> {
        match self {
            Content::Text(s) => Ok(s),
            Content::Parts(parts) => parts
                .into_iter()
                .map(|p| match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => Ok(t),
                    (kind, _) => Err(ApiError::BadRequest(format!(
                        "content parts of type '{kind}' are not supported"
                    ))),
                })
                .collect(),
        }
    }
}

impl CommonBody {
    /// Resolves what both endpoints share; `max_tokens` is the endpoint's own choice.
    fn resolve(
        self,
        state: &AppState,
        prompt: Vec<u32>,
        max_tokens: Option<i64>,
        logprobs: Option<usize>,
    ) -> Result<Generation, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::BadRequest("only n = 1 is supported".into()));
        }
        let model = self.model.unwrap_or_default();
        let adapters = state.resolve_adapters(&model, &self.adapters.unwrap_or_default())?;
        let constraint = match self.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(Constraint::JsonObject),
            Some(ResponseFormat::JsonSchema { json_schema }) => match json_schema.schema {
                Some(schema @ Value::Object(_)) => Some(Constraint::JsonSchema(schema)),
                _ => {
                    return Err(ApiError::BadRequest(
                        "response_format.json_schema.schema must be a JSON Schema object".into(),
                    ));
                }
            },
        };
        let sampling = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repetition_penalty,
            repeat_last_n: None,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        };
        Ok(Generation {
            max_tokens: request::max_tokens(state, max_tokens, None, prompt.len())?,
            sampling: sampling.resolve(state.model.context_length, &Sampling::default())?,
            stop: request::stops(self.stop.map(OneOrMany::into_vec).unwrap_or_default())?,
            adapters,
            constraint,
            logprobs,
            prompt,
        })
    }
}

fn reason(finished: &Finished) -> &'static str {
    match finished.reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn usage(finished: &Finished) -> Value {
    json!({
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    })
}

fn completion_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// What differs between the two endpoints' response objects.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

struct Reply {
    kind: Kind,
    id: String,
    model: String,
    created: u64,
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn wrap(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": format!("airlock-{}", crate::routes::models::VERSION),
            "choices": choices,
        })
    }
}

pub async fn chat_completions(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    if body.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::BadRequest("this model does not support tools".into()));
    }
    let model = body.common.model.clone().unwrap_or_default();
    state.resolve_model(&model)?;
    let messages = body.messages.unwrap_or_default();
    if messages.is_empty() {
        return Err(ApiError::BadRequest("messages must not be empty".into()));
    }
    let chat: Vec<ChatMessage> = messages
        .into_iter()
        .map(|m| {
            Ok(ChatMessage::new(
                m.role,
                m.content.map(Content::text).transpose()?.unwrap_or_default(),
            ))
        })
        .collect::<Result<_, ApiError>>()?;
    let prompt = state.tokenizer().apply_chat_template(&chat, true)?;
    let top = request::top_logprobs(body.top_logprobs)?;
    let logprobs = body.logprobs.unwrap_or(false).then_some(top);
    let max_tokens = body.max_completion_tokens.or(body.common.max_tokens);
    run(
        state,
        body.common,
        Kind::Chat,
        model,
        prompt,
        max_tokens,
        logprobs,
        received,
    )
    .await
}

pub async fn completions(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CompletionBody>,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    if body.echo.unwrap_or(false) {
        return Err(ApiError::BadRequest("echo is not supported".into()));
    }
    let model = body.common.model.clone().unwrap_or_default();
    state.resolve_model(&model)?;
    let prompts = body.prompt.map(OneOrMany::into_vec).unwrap_or_default();
    let [prompt] = prompts.as_slice() else {
        return Err(ApiError::BadRequest("prompt must be one string".into()));
    };
    let prompt = state.tokenizer().prompt_tokens(prompt)?;
    let logprobs = body.logprobs.map(|n| request::top_logprobs(Some(n))).transpose()?;
    let max_tokens = Some(body.common.max_tokens.unwrap_or(COMPLETIONS_DEFAULT_MAX_TOKENS));
    run(
        state,
        body.common,
        Kind::Completion,
        model,
        prompt,
        max_tokens,
        logprobs,
        received,
    )
    .await
}

/// What both endpoints do once they have a prompt: resolve the shared options, queue the
/// request, and answer (streamed or whole).
#[allow(clippy::too_many_arguments)] // the endpoint-specific parts, each resolved by its caller
async fn run(
    state: AppState,
    common: CommonBody,
    kind: Kind,
    model: String,
    prompt: Vec<u32>,
    max_tokens: Option<i64>,
    logprobs: Option<usize>,
    received: Instant,
) -> Result<Response, ApiError> {
    let stream = common.stream.unwrap_or(false);
    let include_usage = common
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let generation = common.resolve(&state, prompt, max_tokens, logprobs)?;
    let running = request::submit(&state, generation, received).await?;
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    };
    let reply = Reply {
        kind,
        id: completion_id(prefix),
        model,
        created: unix_now(),
    };
    respond(state, reply, running, stream, include_usage).await
}

async fn respond(
    state: AppState,
    reply: Reply,
    running: Running,
    streaming: bool,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let Running { events, received, .. } = running;
    if !streaming {
        let c = stream::collect(events).await?;
        state.metrics.record_generation(received.elapsed());
        let tokenizer = state.tokenizer();
        let choice = match reply.kind {
            Kind::Chat => {
                let entries: Vec<Value> = c
                    .tokens
                    .iter()
                    .filter_map(|t| stream::logprob_entry(tokenizer, t))
                    .collect();
                let logprobs = c
                    .tokens
                    .iter()
                    .any(|t| t.logprob.is_some())
                    .then(|| json!({"content": entries, "refusal": null}));
                json!({
                    "index": 0,
                    "message": {"role": "assistant", "content": c.text, "refusal": null},
                    "logprobs": logprobs,
                    "finish_reason": reason(&c.finished),
                })
            }
            Kind::Completion => {
                let logprobs = c
                    .tokens
                    .iter()
                    .any(|t| t.logprob.is_some())
                    .then(|| stream::legacy_logprobs(tokenizer, &c.tokens, 0));
                json!({"index": 0, "text": c.text, "logprobs": logprobs, "finish_reason": reason(&c.finished)})
            }
        };
        let mut body = reply.wrap(false, json!([choice]));
        body["usage"] = usage(&c.finished);
        let log = RequestLog {
            model: reply.model.clone(),
            prompt_tokens: Some(c.finished.prompt_tokens),
            completion_tokens: Some(c.finished.completion_tokens),
        };
        return Ok(with_log(Json(body).into_response(), log));
    }
    let log = RequestLog {
        model: reply.model.clone(),
        ..RequestLog::default()
    };
    let first = match reply.kind {
        Kind::Chat => vec![
            reply
                .wrap(
                    true,
                    json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                )
                .to_string(),
        ],
        Kind::Completion => Vec::new(),
    };
    let mut offset = 0;
    let body = stream::steps(events).flat_map(move |step| {
        let tokenizer = state.tokenizer();
        let events: Vec<String> = match step {
            Ok(Step::Token(token)) => {
                if token.text.is_empty() && token.logprob.is_none() {
                    Vec::new()
                } else {
                    let choice = match reply.kind {
                        Kind::Chat => json!({
                            "index": 0,
                            "delta": {"content": token.text},
                            "logprobs": stream::logprob_entry(tokenizer, &token)
                                .map(|e| json!({"content": [e], "refusal": null})),
                            "finish_reason": null,
                        }),
                        Kind::Completion => {
                            let logprobs = token
                                .logprob
                                .is_some()
                                .then(|| stream::legacy_logprobs(tokenizer, std::slice::from_ref(&token), offset));
                            offset += token.text.len();
                            json!({"index": 0, "text": token.text, "logprobs": logprobs, "finish_reason": null})
                        }
                    };
                    vec![reply.wrap(true, json!([choice])).to_string()]
                }
            }
            Ok(Step::Done(finished)) => {
                state.metrics.record_generation(received.elapsed());
                let choice = match reply.kind {
                    Kind::Chat => {
                        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason(&finished)})
                    }
                    Kind::Completion => {
                        json!({"index": 0, "text": "", "logprobs": null, "finish_reason": reason(&finished)})
                    }
                };
                let mut out = vec![reply.wrap(true, json!([choice])).to_string()];
                if include_usage {
                    let mut last = reply.wrap(true, json!([]));
                    last["usage"] = usage(&finished);
                    out.push(last.to_string());
                }
                out.push("[DONE]".to_string());
                out
            }
            Err(e) => vec![e.body().to_string(), "[DONE]".to_string()],
        };
        futures_util::stream::iter(events)
    });
    Ok(with_log(
        stream::sse(futures_util::stream::iter(first).chain(body)),
        log,
    ))
}

fn model_object(id: &str, created: u64, parent: Option<&str>) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "airlock", "parent": parent})
}

pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .model_names()
        .iter()
        .map(|(name, adapter)| match adapter {
            Some(a) => model_object(name, a.loaded_at, Some(&state.model.name)),
            None => model_object(name, state.model.modified_at, None),
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn get_model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let target = state.resolve_model(&id)?;
    let parent = (!target.adapters.is_empty()).then_some(state.model.name.as_str());
    Ok(Json(model_object(&id, state.model.modified_at, parent)))
}
