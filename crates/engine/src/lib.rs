//! The generation runtime: sampling and the per-sequence decode loop over a loaded model.
//!
//! This is the engine's simplest form, one sequence at a time; the server issue grows it into a
//! request queue with continuous batching.

mod generate;
mod sampler;

pub use generate::{FinishReason, GenerateRequest, Generation, generate};
pub use sampler::{Sampler, Sampling, argmax};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens, which leaves no room in the {context}-token context")]
    PromptTooLong { tokens: usize, context: usize },
    #[error(transparent)]
    Tokenizer(#[from] airlock_tokenizer::TokenizerError),
}
