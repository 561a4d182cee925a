//! Errors of a training run; each names the file, line or option at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("the chat template does not render each turn as an extension of the previous ones")]
    Template,
    #[error("the training split holds no example with a token to learn")]
    NoData,
    #[error("{path}: checkpoint is unreadable: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error(transparent)]
    Tokenizer(#[from] airlock_tokenizer::TokenizerError),
    #[error(transparent)]
    Adapter(#[from] airlock_adapter::AdapterError),
    #[error(transparent)]
    Model(#[from] airlock_model::ModelError),
}
