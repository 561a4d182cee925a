//! The Llama network in burn, and loading it from GGUF or Hugging Face safetensors.
//!
//! Layers are built from a [`LlamaConfig`] and a [`WeightSource`]; they never open a file. The
//! KV cache lives outside the weights ([`KvCache`]), so one [`Llama`] serves many sequences.
//! Weights are kept in GGUF's layout whatever file they came from (q/k rows permuted for
//! llama.cpp's RoPE), so there is one RoPE and one network.
//!
//! Tensors carry their device (burn 0.22): the same model runs on `Device::flex()` (CPU, the
//! default) or, with the `cuda` feature, `Device::cuda(0)`.

mod cache;
mod config;
mod error;
mod layers;
mod llama;
pub mod load;
mod lora;
mod names;
mod rope;
pub mod tiny;

pub use burn::tensor::Device;
pub use cache::KvCache;
pub use config::LlamaConfig;
pub use error::ModelError;
pub use layers::Precision;
pub use llama::Llama;
pub use load::{
    GgufSource, HostData, HostTensor, SafetensorsSource, WeightSource, permute_rope_rows, unpermute_rope_rows,
};
pub use lora::{AdapterSet, Dropout, LoraBatch, LoraPair, LoraWeights};
pub use names::{LayerWeight, WeightName};
pub use rope::Rope;

/// The device models run on by default: CUDA when built with `--features cuda`, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}
