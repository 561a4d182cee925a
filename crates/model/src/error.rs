//! Errors of model configuration and weight loading.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] airlock_gguf::GgufError),
    #[error(transparent)]
    Kernel(#[from] airlock_kernels::QMatrixError),
    #[error("architecture `{0}` is not supported (airlock runs Llama-family models: llama, mistral)")]
    UnsupportedArchitecture(String),
    #[error("invalid model configuration: {0}")]
    BadConfig(&'static str),
    #[error("invalid config.json: {0}")]
    HfConfig(#[source] serde_json::Error),
    #[error("the checkpoint has no tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("tensor `{name}` has dtype {dtype}, which is not supported (F32, F16, BF16)")]
    Dtype { name: String, dtype: String },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("{path}: invalid safetensors index: {source}")]
    Index { path: PathBuf, source: serde_json::Error },
}
