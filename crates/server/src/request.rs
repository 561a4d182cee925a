//! The validated generation request both APIs resolve into, and its submission to the engine.
//!
//! Parse, then resolve: each route deserializes its body as the client sent it (every field
//! optional, in that API's names) and resolves it into [`Generation`], which has no `Option`s
//! left but those that mean something. Sampling defaults live in `airlock_engine::Sampling`,
//! server limits in [`crate::config::ServeConfig`].

use std::time::Instant;

use airlock_constrain::Constraint;
use airlock_engine::{Event, Request, Sampling};
use airlock_model::AdapterSet;
use serde::Deserialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::state::AppState;

/// Most stop strings per request, and their longest length in bytes.
const MAX_STOPS: usize = 16;
const MAX_STOP_LEN: usize = 1024;
/// Most alternatives per token for `top_logprobs` (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// `{"name": "a", "scale": 0.7}` in a request's `adapters` list.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterRef {
    pub name: String,
    #[serde(default = "unit_scale")]
    pub scale: f32,
}

fn unit_scale() -> f32 {
    1.0
}

/// Sampling options as any API sends them; absent means the engine's default.
#[derive(Debug, Clone, Default)]
pub struct SamplingParams {
    pub temperature: Option<f32>,
    pub top_k: Option<i64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<i64>,
}

fn check(ok: bool, message: &str) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(message.into()))
    }
}

impl SamplingParams {
    /// Checks ranges and fills in the API's `defaults`. Without a seed, sampling at a positive
    /// temperature draws a random one (greedy decoding needs none).
    pub fn resolve(&self, context: usize, defaults: &Sampling) -> Result<Sampling, ApiError> {
        let d = defaults;
        let finite = |v: Option<f32>| v.is_none_or(f32::is_finite);
        check(
            finite(self.temperature)
                && finite(self.top_p)
                && finite(self.min_p)
                && finite(self.repeat_penalty)
                && finite(self.presence_penalty)
                && finite(self.frequency_penalty),
            "sampling options must be finite numbers",
        )?;
        let temperature = self.temperature.unwrap_or(d.temperature);
        check(
            (0.0..=100.0).contains(&temperature),
            "temperature must be between 0 and 100",
        )?;
        let top_p = self.top_p.unwrap_or(d.top_p);
        check(top_p > 0.0 && top_p <= 1.0, "top_p must be in (0, 1]")?;
        let min_p = self.min_p.unwrap_or(d.min_p);
        check((0.0..=1.0).contains(&min_p), "min_p must be in [0, 1]")?;
        let repeat_penalty = self.repeat_penalty.unwrap_or(d.repeat_penalty);
        check(repeat_penalty > 0.0, "repeat_penalty must be positive")?;
        let presence_penalty = self.presence_penalty.unwrap_or(d.presence_penalty);
        let frequency_penalty = self.frequency_penalty.unwrap_or(d.frequency_penalty);
        check(
            (-2.0..=2.0).contains(&presence_penalty) && (-2.0..=2.0).contains(&frequency_penalty),
            "presence_penalty and frequency_penalty must be between -2 and 2",
        )?;
        let top_k = match self.top_k {
            Some(k) if k <= 0 => 0,
            Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
            None => d.top_k,
        };
        let repeat_last_n = match self.repeat_last_n {
            Some(-1) => context,
            Some(n) if n < 0 => return Err(ApiError::BadRequest("repeat_last_n must be -1 or more".into())),
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(context),
            None => d.repeat_last_n,
        };
        let seed = match self.seed {
            Some(seed) => seed as u64,
            None if temperature > 0.0 => rand::random(),
            None => d.seed,
        };
        Ok(Sampling {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n,
            presence_penalty,
            frequency_penalty,
            seed,
        })
    }
}

/// A resolved request, ready for the engine.
#[derive(Debug)]
pub struct Generation {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub adapters: AdapterSet,
    pub constraint: Option<Constraint>,
    /// Alternatives per token to report, when log-probabilities are asked for.
    pub logprobs: Option<usize>,
}

/// A submitted generation: its events and what the responses need to know of it.
#[derive(Debug)]
pub struct Running {
    /// Owned by whoever answers the client; dropping it cancels the row.
    pub events: UnboundedReceiver<Event>,
    pub prompt: Vec<u32>,
    pub received: Instant,
}

/// The token limit: the request's (`None` or negative = the server's default), within
/// `num_ctx` when the client gives one.
pub fn max_tokens(
    state: &AppState,
    requested: Option<i64>,
    num_ctx: Option<i64>,
    prompt_len: usize,
) -> Result<usize, ApiError> {
    let mut max = match requested {
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX).max(1),
        _ => state.config.default_max_tokens,
    };
    if let Some(ctx) = num_ctx {
        check(ctx > 0, "num_ctx must be positive")?;
        let ctx = usize::try_from(ctx).unwrap_or(usize::MAX);
        max = max.min(ctx.saturating_sub(prompt_len).max(1));
    }
    Ok(max.min(state.model.context_length))
}

/// Stop strings: empty ones dropped, count and length bounded.
pub fn stops(stop: Vec<String>) -> Result<Vec<String>, ApiError> {
    let stop: Vec<String> = stop.into_iter().filter(|s| !s.is_empty()).collect();
    check(stop.len() <= MAX_STOPS, "too many stop strings (at most 16)")?;
    check(
        stop.iter().all(|s| s.len() <= MAX_STOP_LEN),
        "stop strings may be at most 1024 bytes",
    )?;
    Ok(stop)
}

/// `top_logprobs` within OpenAI's limit.
pub fn top_logprobs(n: Option<i64>) -> Result<usize, ApiError> {
    match n {
        None => Ok(0),
        Some(n) if (0..=MAX_TOP_LOGPROBS as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(ApiError::BadRequest(format!(
            "top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}"
        ))),
    }
}

/// Compiles the constraint (off the async runtime) and queues the request.
pub async fn submit(state: &AppState, generation: Generation, received: Instant) -> Result<Running, ApiError> {
    let constraint = match generation.constraint {
        Some(constraint) => {
            let compiler = std::sync::Arc::clone(&state.compiler);
            Some(tokio::task::spawn_blocking(move || compiler.compile(&constraint)).await??)
        }
        None => None,
    };
    let request = Request {
        prompt: generation.prompt.clone(),
        max_tokens: generation.max_tokens,
        sampling: generation.sampling,
        stop: generation.stop,
        adapters: generation.adapters,
        constraint,
        logprobs: generation.logprobs,
        timeout: Some(state.config.request_timeout),
    };
    let events = state.engine.submit(request)?;
    Ok(Running {
        events,
        prompt: generation.prompt,
        received,
    })
}
