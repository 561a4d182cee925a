//! Weight sources: where a model's tensors come from, kept apart from the layers.
//!
//! Each source maps [`WeightName`]s through its own name table and hands back row-major host
//! tensors in the GGUF layout (q/k rows permuted for llama.cpp's RoPE), so the network has one
//! RoPE and one definition whatever file it came from.

mod gguf;
mod safetensors;

pub use self::gguf::GgufSource;
pub use self::safetensors::SafetensorsSource;

use airlock_gguf::GgmlType;

use crate::{LlamaConfig, ModelError, WeightName};

/// A tensor in host memory, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Outermost dimension first: a linear weight is `[out, in]`.
    pub shape: Vec<usize>,
    pub data: HostData,
}

/// Dense values, or the file's packed blocks kept as they are for the quantized kernels.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    Packed { ggml_type: GgmlType, bytes: Vec<u8> },
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data: HostData::F32(data),
        }
    }

    /// The values as f32, dequantizing packed blocks.
    pub fn into_f32(self) -> Result<Vec<f32>, ModelError> {
        match self.data {
            HostData::F32(v) => Ok(v),
            HostData::Packed { ggml_type, bytes } => {
                let mut out = vec![0.0; self.shape.iter().product()];
                airlock_gguf::dequantize(ggml_type, &bytes, &mut out)?;
                Ok(out)
            }
        }
    }

    pub(crate) fn expect_shape(self, name: WeightName, expected: &[usize]) -> Result<Self, ModelError> {
        if self.shape != expected {
            return Err(ModelError::Shape {
                name: format!("{name:?}"),
                expected: expected.to_vec(),
                actual: self.shape,
            });
        }
        Ok(self)
    }
}

/// Anything a Llama can be loaded from.
pub trait WeightSource {
    fn config(&self) -> &LlamaConfig;
    /// The tensor, or `None` when the checkpoint does not have it (an output projection of a
    /// model with tied embeddings).
    fn load(&self, name: WeightName) -> Result<Option<HostTensor>, ModelError>;
}

/// Reorders the rows of a q or k projection from Hugging Face's RoPE layout (two halves per head)
/// to GGUF's (interleaved pairs), as llama.cpp's HF-to-GGUF converter does: within each head, row
/// `j * head_dim/2 + i` moves to row `2 * i + j`. `cols` is the row length.
pub fn permute_rope_rows(data: &[f32], n_heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    move_rope_rows(data, n_heads, head_dim, cols, true)
}

/// The inverse of [`permute_rope_rows`]: GGUF's interleaved order back to Hugging Face's.
pub fn unpermute_rope_rows(data: &[f32], n_heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    move_rope_rows(data, n_heads, head_dim, cols, false)
}

fn move_rope_rows(data: &[f32], n_heads: usize, head_dim: usize, cols: usize, to_gguf: bool) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..n_heads {
        for j in 0..2 {
            for i in 0..half {
                let hf = (h * head_dim + j * half + i) * cols;
                let gguf = (h * head_dim + 2 * i + j) * cols;
                let (src, dst) = if to_gguf { (hf, gguf) } else { (gguf, hf) };
                out[dst..dst + cols].copy_from_slice(&data[src..src + cols]);
            }
        }
    }
    out
}
