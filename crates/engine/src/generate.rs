//! One sequence's generation on the calling thread (the CLI's path): prefill the prompt, then
//! decode token by token until an end-of-generation token, a stop string, the end of a
//! constrained value, or the token limit.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use airlock_model::{Llama, LoraBatch};
use airlock_tokenizer::Tokenizer;

use crate::{EngineError, Request, Sequence};

/// Why generation ended (named as Ollama's `done_reason` / OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token, a stop string, or a complete constrained value.
    Stop,
    /// The token limit or the context length.
    Length,
    /// The caller stopped listening (a disconnected client).
    Cancelled,
}

impl FinishReason {
    /// The name both Ollama and OpenAI use.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// Every generated token, including a final end-of-generation token.
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub prompt_duration: Duration,
    pub generate_duration: Duration,
}

impl Generation {
    pub fn prompt_tokens_per_second(&self, prompt_len: usize) -> f64 {
        prompt_len as f64 / self.prompt_duration.as_secs_f64().max(1e-9)
    }

    pub fn tokens_per_second(&self) -> f64 {
        // The first token comes from the prompt pass; the decode rate counts the rest.
        self.tokens.len().saturating_sub(1) as f64 / self.generate_duration.as_secs_f64().max(1e-9)
    }
}

/// Checks the prompt fits and returns the cache capacity the request needs.
pub(crate) fn capacity(request: &Request, context: usize) -> Result<usize, EngineError> {
    if request.prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if request.prompt.len() >= context {
        return Err(EngineError::PromptTooLong {
            tokens: request.prompt.len(),
            context,
        });
    }
    Ok((request.prompt.len() + request.max_tokens.max(1)).min(context))
}

/// Runs `request` to the end, calling `on_text` with each new piece of text as soon as it is
/// known not to be the start of a stop string. `on_text` may return `Break` to cancel.
pub fn generate(
    model: &Llama,
    tokenizer: &Tokenizer,
    mut request: Request,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError> {
    let mut cache = model.new_cache(capacity(&request, model.config().context_length)?);
    let lora = LoraBatch::uniform(std::mem::take(&mut request.adapters));
    let mut sequence = Sequence::new(&mut request, tokenizer);
    let mut generation = Generation {
        tokens: Vec::new(),
        text: String::new(),
        finish: FinishReason::Length,
        prompt_duration: Duration::ZERO,
        generate_duration: Duration::ZERO,
    };
    let started = Instant::now();
    let mut logits = model.next_logits_with(&request.prompt, &mut cache, &lora);
    generation.prompt_duration = started.elapsed();
    let decode_started = Instant::now();
    loop {
        let room = cache.len() < cache.capacity();
        let (token, finish) = sequence.next(tokenizer, &mut logits, room)?;
        generation.tokens.push(token.id);
        generation.text.push_str(&token.text);
        if !token.text.is_empty() && on_text(&token.text).is_break() {
            generation.finish = FinishReason::Cancelled;
            break;
        }
        if let Some(finish) = finish {
            generation.finish = finish;
            break;
        }
        logits = model.next_logits_with(&[token.id], &mut cache, &lora);
    }
    generation.generate_duration = decode_started.elapsed();
    Ok(generation)
}
