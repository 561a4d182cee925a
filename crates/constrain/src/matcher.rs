//! Per-request constraint state: the set of tokens allowed next, logit masking, and advancing by
//! the sampled token. Wraps llguidance's `Matcher` (an Earley parser over a lazily built lexer).

use std::sync::Arc;

use llguidance::toktrie::SimpleVob;

use crate::error::{ConstrainError, truncate};

/// A set of token ids: a bitset over the vocabulary (bit `id % 32` of word `id / 32`).
#[derive(Clone, Debug)]
pub struct TokenSet {
    bits: SimpleVob,
}

impl TokenSet {
    /// Whether `token` is in the set (ids past the vocabulary never are).
    pub fn contains(&self, token: u32) -> bool {
        (token as usize) < self.bits.len() && self.bits.is_allowed(token)
    }

    /// How many tokens are in the set.
    pub fn count(&self) -> usize {
        self.bits.num_set()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.is_zero()
    }

    /// The ids in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter()
    }

    /// The raw bitset words: bit `id % 32` of word `id / 32` is set when `id` is in the set.
    /// `[ceil(vocab_size / 32)]`
    pub fn as_words(&self) -> &[u32] {
        self.bits.as_slice()
    }
}

/// The state of one constrained generation. Per step: [`Matcher::mask_logits`] (or
/// [`Matcher::allowed`]), sample, [`Matcher::consume`]. Stop when the sampled token is an
/// end-of-generation token (only allowed once [`Matcher::is_accepting`]) or when
/// [`Matcher::is_finished`].
pub struct Matcher {
    inner: llguidance::Matcher,
    vocab_size: usize,
    /// End-of-generation tokens, EOS first.
    eog: Arc<[u32]>,
    /// The allowed set for the current state; `None` until computed after each `consume`.
    mask: Option<TokenSet>,
    /// The output so far is a complete value.
    accepting: bool,
    /// Nothing but an end-of-generation token can follow (or one was consumed).
    finished: bool,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("vocab_size", &self.vocab_size)
            .field("accepting", &self.accepting)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Matcher {
    pub(crate) fn new(
        mut inner: llguidance::Matcher,
        vocab_size: usize,
        eog: Arc<[u32]>,
    ) -> Result<Self, ConstrainError> {
        if let Some(e) = inner.get_error() {
            return Err(ConstrainError::Internal(truncate(&e)));
        }
        let accepting = inner.is_accepting().map_err(internal)?;
        let finished = inner.is_stopped();
        Ok(Self {
            inner,
            vocab_size,
            eog,
            mask: None,
            accepting,
            finished,
        })
    }

    /// The tokens allowed next. Computed once per state (this is the costly step, typically tens to
    /// hundreds of microseconds) and cached until the next [`Matcher::consume`]. Once the output is
    /// complete this contains the end-of-generation tokens; once finished, only them.
    pub fn allowed(&mut self) -> Result<&TokenSet, ConstrainError> {
        let mask = match self.mask.take() {
            Some(mask) => mask,
            None => {
                let bits = self.inner.compute_mask_or_eos().map_err(internal)?;
                if bits.is_zero() {
                    return Err(ConstrainError::Internal("the constraint allows no token".into()));
                }
                TokenSet { bits }
            }
        };
        Ok(self.mask.insert(mask))
    }

    /// Sets every disallowed token's logit to negative infinity. `logits` may be longer than the
    /// tokenizer's vocabulary (padded output layers): the extra entries are disallowed.
    pub fn mask_logits(&mut self, logits: &mut [f32]) -> Result<(), ConstrainError> {
        let words = self.allowed()?.as_words();
        let mut chunks = logits.chunks_mut(32);
        for (&word, chunk) in words.iter().zip(&mut chunks) {
            if word == u32::MAX {
                continue;
            }
            if word == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            for (bit, logit) in chunk.iter_mut().enumerate() {
                if word & (1 << bit) == 0 {
                    *logit = f32::NEG_INFINITY;
                }
            }
        }
        for chunk in chunks {
            chunk.fill(f32::NEG_INFINITY);
        }
        Ok(())
    }

    /// Advances by `token`. A token the constraint does not allow here is
    /// [`ConstrainError::Rejected`] and leaves the state unchanged. Consuming an end-of-generation
    /// token (allowed only when accepting) finishes the matcher.
    pub fn consume(&mut self, token: u32) -> Result<(), ConstrainError> {
        if !self.allowed()?.contains(token) {
            return Err(ConstrainError::Rejected { token });
        }
        if self.finished {
            // Only end-of-generation tokens are allowed here; they change nothing.
            return Ok(());
        }
        self.mask = None;
        self.inner.consume_token(token).map_err(internal)?;
        self.accepting = self.inner.is_accepting().map_err(internal)?;
        self.finished = self.inner.is_stopped() || self.eog.contains(&token);
        Ok(())
    }

    /// Whether the output so far is a complete valid value (an end-of-generation token is allowed).
    pub fn is_accepting(&self) -> bool {
        self.accepting || self.finished
    }

    /// Whether nothing but an end-of-generation token can follow (or one was consumed): the caller
    /// can stop generating without sampling again.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The vocabulary size the masks cover.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

fn internal(err: impl std::fmt::Display) -> ConstrainError {
    ConstrainError::Internal(truncate(&err.to_string()))
}
