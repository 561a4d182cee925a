//! One sequence's decoding state between forward passes: penalties and sampling, the structured
//! output constraint, stop strings, and UTF-8-safe detokenization. Both the single-sequence loop
//! ([`crate::generate`]) and the batching scheduler drive sequences through [`Sequence::next`].

use std::time::Duration;

use airlock_constrain::Matcher;
use airlock_model::AdapterSet;
use airlock_tokenizer::{StreamDecoder, Tokenizer};

use crate::stop::StopMatcher;
use crate::{EngineError, FinishReason, Sampler, Sampling};

/// A resolved request for one sequence.
#[derive(Debug, Default)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    /// LoRA adapters with their scales; empty for the base model.
    pub adapters: AdapterSet,
    /// Structured output: only tokens the matcher allows are sampled.
    pub constraint: Option<Matcher>,
    /// Report log-probabilities with this many alternatives per token.
    pub logprobs: Option<usize>,
    /// Give up (with [`EngineError::Timeout`]) after this long in the engine.
    pub timeout: Option<Duration>,
}

/// The log-probability of a chosen token and of the most likely alternatives, from the model's
/// own distribution (before penalties, sampling filters and constraints), as OpenAI reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprob {
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// What one step produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: u32,
    /// New text, possibly empty (half a UTF-8 character, or text held back by a stop string).
    pub text: String,
    pub logprob: Option<Logprob>,
}

#[derive(Debug)]
pub struct Sequence {
    sampler: Sampler,
    decoder: StreamDecoder,
    stops: StopMatcher,
    constraint: Option<Matcher>,
    history: Vec<u32>,
    generated: usize,
    max_tokens: usize,
    logprobs: Option<usize>,
}

impl Sequence {
    pub fn new(request: &mut Request, tokenizer: &Tokenizer) -> Self {
        Self {
            sampler: Sampler::new(request.sampling.clone()),
            decoder: StreamDecoder::new(tokenizer),
            stops: StopMatcher::new(request.stop.clone()),
            constraint: request.constraint.take(),
            history: request.prompt.clone(),
            generated: 0,
            max_tokens: request.max_tokens,
            logprobs: request.logprobs,
        }
    }

    pub fn generated(&self) -> usize {
        self.generated
    }

    /// Samples the next token from `logits`; returns it with its text, and the reason to stop
    /// when this token ends the sequence. `room` says whether the cache can take another token.
    pub fn next(
        &mut self,
        tokenizer: &Tokenizer,
        logits: &mut [f32],
        room: bool,
    ) -> Result<(Token, Option<FinishReason>), EngineError> {
        let raw = self.logprobs.map(|n| (logits.to_vec(), n));
        if let Some(matcher) = &mut self.constraint {
            matcher.mask_logits(logits)?;
        }
        let id = self.sampler.sample(logits, &self.history);
        if let Some(matcher) = &mut self.constraint {
            matcher.consume(id)?;
        }
        self.history.push(id);
        self.generated += 1;
        let logprob = raw.map(|(raw, n)| logprob_of(&raw, id, n));
        if tokenizer.is_eog(id) {
            let text = self.flush();
            return Ok((Token { id, text, logprob }, Some(FinishReason::Stop)));
        }
        let piece = self.decoder.push(tokenizer, id)?;
        let (mut text, stopped) = self.stops.push(&piece);
        let finish = if stopped || self.constraint.as_ref().is_some_and(Matcher::is_finished) {
            Some(FinishReason::Stop)
        } else if self.generated >= self.max_tokens || !room {
            Some(FinishReason::Length)
        } else {
            None
        };
        if finish.is_some() && !stopped {
            text.push_str(&self.flush());
        }
        Ok((Token { id, text, logprob }, finish))
    }

    /// Releases text still held back at the end of generation.
    fn flush(&mut self) -> String {
        self.stops.finish(&self.decoder.finish())
    }
}

/// Log-probabilities of `id` and of the `n` most likely tokens under `logits`.
fn logprob_of(logits: &[f32], id: u32, n: usize) -> Logprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let n = n.min(ids.len());
    if n > 0 {
        ids.select_nth_unstable_by(n - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    }
    ids.truncate(n);
    ids.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    Logprob {
        logprob: logits[id as usize] - lse,
        top: ids.into_iter().map(|t| (t, logits[t as usize] - lse)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::logprob_of;

    #[test]
    fn logprobs_are_a_normalized_log_softmax_with_the_best_first() {
        let lp = logprob_of(&[1.0, 3.0, 2.0, 0.0], 2, 2);
        let total: f32 = [1.0f32, 3.0, 2.0, 0.0].iter().map(|l| (l - 3.0f32).exp()).sum();
        assert!((lp.logprob - (2.0 - 3.0 - total.ln())).abs() < 1e-6);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(lp.top[0].1 > lp.top[1].1);
    }
}
