//! The resolved Llama hyper-parameters, read once from GGUF metadata or an HF `config.json`.
//!
//! Parse, then resolve: each format is read as it is (optional fields), then turned into one
//! [`LlamaConfig`] with no `Option`s; every default lives here.

use airlock_gguf::GgufFile;
use serde::Deserialize;

use crate::{LayerWeight, ModelError};

/// Architectures that are the Llama network under another name in GGUF files.
const LLAMA_ARCHITECTURES: &[&str] = &["llama", "mistral"];
/// HF `model_type` values that are the Llama network.
const HF_MODEL_TYPES: &[&str] = &["llama", "mistral"];

const DEFAULT_ROPE_BASE: f32 = 10_000.0;
const DEFAULT_RMS_EPS: f32 = 1e-5;
const DEFAULT_CONTEXT: usize = 2048;

/// Everything the network needs to know about its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub n_layers: usize,
    /// Model width (`embedding_length` / `hidden_size`).
    pub dim: usize,
    /// SwiGLU hidden width.
    pub ffn_dim: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// Longest context the model was trained for.
    pub context_length: usize,
    /// The output projection reuses the token embedding.
    pub tied_embeddings: bool,
}

impl LlamaConfig {
    /// Reads `{arch}.*` keys; `vocab_size` and `tied_embeddings` come from the tensor table.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let arch = file.architecture()?;
        if !LLAMA_ARCHITECTURES.contains(&arch) {
            return Err(ModelError::UnsupportedArchitecture(arch.to_string()));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let usize_of = |k: &str| -> Result<usize, ModelError> { Ok(file.get_u64(&key(k))? as usize) };
        let n_heads = usize_of("attention.head_count")?;
        let dim = usize_of("embedding_length")?;
        let n_kv_heads = match file.get(&key("attention.head_count_kv")) {
            Some(_) => usize_of("attention.head_count_kv")?,
            None => n_heads,
        };
        let embd = file
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
        let vocab_size = embd.dims.get(1).copied().unwrap_or(0) as usize;
        let optional_f32 = |k: &str, default: f32| -> Result<f32, ModelError> {
            match file.get(&key(k)) {
                Some(_) => Ok(file.get_f32(&key(k))?),
                None => Ok(default),
            }
        };
        let context_length = match file.get(&key("context_length")) {
            Some(_) => usize_of("context_length")?,
            None => DEFAULT_CONTEXT,
        };
        let head_dim = match file.get(&key("attention.key_length")) {
            Some(_) => usize_of("attention.key_length")?,
            None => dim / n_heads.max(1),
        };
        Self {
            n_layers: usize_of("block_count")?,
            dim,
            ffn_dim: usize_of("feed_forward_length")?,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            rope_base: optional_f32("rope.freq_base", DEFAULT_ROPE_BASE)?,
            rms_eps: optional_f32("attention.layer_norm_rms_epsilon", DEFAULT_RMS_EPS)?,
            context_length,
            tied_embeddings: file.tensor("output.weight").is_none(),
        }
        .validated()
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<Self, ModelError> {
        let raw: HfConfig = serde_json::from_str(text).map_err(ModelError::HfConfig)?;
        if !HF_MODEL_TYPES.contains(&raw.model_type.as_str()) {
            return Err(ModelError::UnsupportedArchitecture(raw.model_type));
        }
        let n_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        Self {
            n_layers: raw.num_hidden_layers,
            dim: raw.hidden_size,
            ffn_dim: raw.intermediate_size,
            n_heads: raw.num_attention_heads,
            n_kv_heads,
            head_dim: raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1)),
            vocab_size: raw.vocab_size,
            rope_base: raw.rope_theta.unwrap_or(DEFAULT_ROPE_BASE),
            rms_eps: raw.rms_norm_eps.unwrap_or(DEFAULT_RMS_EPS),
            context_length: raw.max_position_embeddings.unwrap_or(DEFAULT_CONTEXT),
            tied_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        }
        .validated()
    }

    fn validated(self) -> Result<Self, ModelError> {
        let bad = |what: &'static str| Err(ModelError::BadConfig(what));
        if self.n_layers == 0 || self.dim == 0 || self.ffn_dim == 0 || self.vocab_size == 0 {
            return bad("a layer count, width or vocabulary size is zero");
        }
        if self.n_heads == 0 || self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad("head_count must be a non-zero multiple of head_count_kv");
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad("head dimension must be even and non-zero");
        }
        Ok(self)
    }

    /// `[out, in]` of a projection's weight.
    pub fn projection_shape(&self, w: LayerWeight) -> [usize; 2] {
        let (q, kv) = (self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim);
        match w {
            LayerWeight::Q => [q, self.dim],
            LayerWeight::K | LayerWeight::V => [kv, self.dim],
            LayerWeight::O => [self.dim, q],
            LayerWeight::Gate | LayerWeight::Up => [self.ffn_dim, self.dim],
            LayerWeight::Down => [self.dim, self.ffn_dim],
            // Norm gains are vectors, not projections; as a one-column matrix for completeness.
            LayerWeight::AttnNorm | LayerWeight::FfnNorm => [self.dim, 1],
        }
    }

    /// Heads whose rows a projection holds (q: query heads, k: key/value heads), for RoPE row
    /// permutations; `None` for projections RoPE does not touch.
    pub fn rope_heads(&self, w: LayerWeight) -> Option<usize> {
        match w {
            LayerWeight::Q => Some(self.n_heads),
            LayerWeight::K => Some(self.n_kv_heads),
            _ => None,
        }
    }

    /// Query heads that share one key/value head.
    pub fn n_rep(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// `config.json` as Hugging Face writes it (only the fields a Llama needs).
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    rope_theta: Option<f32>,
    rms_norm_eps: Option<f32>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
}
