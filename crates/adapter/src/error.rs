//! Errors of reading and writing adapter files; each names the file and the offending entry.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid adapter_config.json: {source}")]
    Config { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("{path}: tensor `{key}` is not a LoRA factor of a Llama projection")]
    UnknownTensor { path: PathBuf, key: String },
    #[error("{path}: tensor `{key}` has dtype {dtype} (F32, F16 or BF16 expected)")]
    Dtype { path: PathBuf, key: String, dtype: String },
    #[error("{path}: tensor `{key}` has shape {actual:?}, the base model needs {expected:?}")]
    Shape {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{path}: layer {layer} of `{key}` is beyond the base model's {n_layers} layers")]
    Layer {
        path: PathBuf,
        key: String,
        layer: usize,
        n_layers: usize,
    },
    #[error("{path}: `{key}` has no matching lora_{missing} factor")]
    Unpaired { path: PathBuf, key: String, missing: char },
    #[error("{path}: the adapter holds no LoRA factors")]
    Empty { path: PathBuf },
    #[error("{path}: {source}")]
    Gguf {
        path: PathBuf,
        source: airlock_gguf::GgufError,
    },
    #[error(transparent)]
    Model(#[from] airlock_model::ModelError),
}
