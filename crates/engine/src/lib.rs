//! The generation runtime: sampling, the per-sequence decoding state, the single-sequence loop
//! the CLI uses, and the serving engine (bounded queue, continuous batching with per-row
//! adapters and constraints).

mod generate;
mod sampler;
mod scheduler;
mod sequence;
mod stop;

pub use generate::{FinishReason, Generation, generate};
pub use sampler::{Sampler, Sampling, argmax};
pub use scheduler::{Engine, EngineOptions, Event, Finished, Metrics};
pub use sequence::{Logprob, Request, Sequence, Token};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens, which leaves no room in the {context}-token context")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("the request queue is full")]
    QueueFull,
    #[error("the engine has stopped")]
    Stopped,
    #[error("the request took longer than its timeout")]
    Timeout,
    #[error("detokenization failed: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Constraint(#[from] airlock_constrain::ConstrainError),
}

impl From<airlock_tokenizer::TokenizerError> for EngineError {
    fn from(e: airlock_tokenizer::TokenizerError) -> Self {
        EngineError::Tokenizer(e.to_string())
    }
}
