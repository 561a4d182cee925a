//! Accuracy and perplexity of adapters against the base model, with reports a CI job can gate
//! on: greedy (and, for JSON tasks, schema-constrained) generation on every test example,
//! metrics with confidence intervals, and thresholds.

mod dataset;
mod metrics;
mod report;
mod run;

pub use dataset::{EvalExample, Prompt, read_examples};
pub use metrics::{ItemCounts, contains, exact, json_fields, normalize, wilson};
pub use report::{Gate, Report};
pub use run::{EvalOptions, ExampleResult, Metric, Score, VariantReport, evaluate, perplexity, start_engine};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Tokenizer(#[from] airlock_tokenizer::TokenizerError),
    #[error(transparent)]
    Train(#[from] airlock_train::TrainError),
    #[error(transparent)]
    Engine(#[from] airlock_engine::EngineError),
    #[error(transparent)]
    Constraint(#[from] airlock_constrain::ConstrainError),
}
