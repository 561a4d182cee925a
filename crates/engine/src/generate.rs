//! One sequence's generation loop: prefill the prompt, then sample token by token until an
//! end-of-generation token, a stop string or the token limit, streaming only whole UTF-8 text.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use airlock_model::Llama;
use airlock_tokenizer::{StreamDecoder, Tokenizer};

use crate::{EngineError, Sampler, Sampling};

/// A resolved request for one sequence.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
}

/// Why generation ended (named as Ollama's `done_reason` / OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// The token limit or the context length.
    Length,
    /// The caller asked to stop (a disconnected client).
    Cancelled,
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

/// Runs `request` to the end, calling `on_text` with each new piece of text as soon as it is
/// known not to be the start of a stop string. `on_text` may return `Break` to cancel.
pub fn generate(
    model: &Llama,
    tokenizer: &Tokenizer,
    request: &GenerateRequest,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<Generation, EngineError> {
    let context = model.config().context_length;
    if request.prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    if request.prompt.len() >= context {
        return Err(EngineError::PromptTooLong {
            tokens: request.prompt.len(),
            context,
        });
    }
    let capacity = (request.prompt.len() + request.max_tokens).min(context);
    let mut cache = model.new_cache(capacity);
    let mut sampler = Sampler::new(request.sampling.clone());
    let mut decoder = StreamDecoder::new(tokenizer);
    let mut stops = StopMatcher::new(&request.stop);
    let mut history = request.prompt.clone();
    let mut generation = Generation {
        tokens: Vec::new(),
        text: String::new(),
        finish: FinishReason::Length,
        prompt_duration: Duration::ZERO,
        generate_duration: Duration::ZERO,
    };

    let started = Instant::now();
    let mut logits = model.next_logits(&request.prompt, &mut cache);
    generation.prompt_duration = started.elapsed();
    let decode_started = Instant::now();
    while generation.tokens.len() < request.max_tokens {
        let token = sampler.sample(&mut logits, &history);
        generation.tokens.push(token);
        history.push(token);
        if tokenizer.eog_ids().contains(&token) {
            generation.finish = FinishReason::Stop;
            break;
        }
        let piece = decoder.push(tokenizer, token)?;
        let (emit, stopped) = stops.push(&piece);
        generation.text.push_str(&emit);
        if !emit.is_empty() && on_text(&emit).is_break() {
            generation.finish = FinishReason::Cancelled;
            break;
        }
        if stopped {
            generation.finish = FinishReason::Stop;
            break;
        }
        if cache.len() >= cache.capacity() {
            break;
        }
        logits = model.next_logits(&[token], &mut cache);
    }
    if generation.finish != FinishReason::Stop || stops.pending_is_output() {
        let rest = stops.finish(&decoder.finish());
        generation.text.push_str(&rest);
        if !rest.is_empty() {
            let _ = on_text(&rest);
        }
    }
    generation.generate_duration = decode_started.elapsed();
    Ok(generation)
}

/// Holds back text that might be the beginning of a stop string.
#[derive(Debug)]
struct StopMatcher<'a> {
    stops: &'a [String],
    pending: String,
    stopped: bool,
}

impl<'a> StopMatcher<'a> {
    fn new(stops: &'a [String]) -> Self {
        Self {
            stops,
            pending: String::new(),
            stopped: false,
        }
    }

    /// Adds text; returns what can be emitted and whether a stop string was found.
    fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            self.stopped = true;
            return (emit, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let split = self.pending.len() - keep;
        let emit = self.pending[..split].to_string();
        self.pending.drain(..split);
        (emit, false)
    }

    /// True when text is still held back (generation ended without completing a stop string).
    fn pending_is_output(&self) -> bool {
        !self.stopped && !self.pending.is_empty()
    }

    /// Releases held-back text at the end of generation.
    fn finish(&mut self, tail: &str) -> String {
        if self.stopped {
            return String::new();
        }
        let (mut emit, stopped) = self.push(tail);
        if !stopped {
            emit.push_str(&std::mem::take(&mut self.pending));
        }
        emit
    }
}

#[cfg(test)]
mod tests {
    use super::StopMatcher;

    #[test]
    fn stop_string_split_across_pieces_is_not_emitted() {
        let stops = vec!["</end>".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("hello </"), ("hello ".to_string(), false));
        assert_eq!(m.push("en"), (String::new(), false));
        assert_eq!(m.push("d> more"), (String::new(), true));
    }

    #[test]
    fn held_back_prefix_is_released_when_it_does_not_complete() {
        let stops = vec!["STOP".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("a ST"), ("a ".to_string(), false));
        assert_eq!(m.push("ART"), ("START".to_string(), false));
        assert_eq!(m.push("ST"), (String::new(), false));
        assert_eq!(m.finish(""), "ST");
    }

    #[test]
    fn without_stop_strings_everything_passes_through() {
        let mut m = StopMatcher::new(&[]);
        assert_eq!(m.push("abc"), ("abc".to_string(), false));
    }
}
