//! LoRA adapter files: PEFT's layout read and written, checked against the base model, and
//! turned into the factors the model applies per request.
//!
//! The PEFT layout is the lingua franca (PEFT, vLLM and Ollama load it), so it is what airlock
//! reads and writes. Weights are F32/F16/BF16 safetensors; every tensor's shape is checked
//! against the base before an adapter is accepted, and the file's SHA-256 is kept for manifests.

mod config;
mod error;
mod gguf;
mod peft;

use airlock_model::{Device, LoraWeights};

pub use config::{LoraConfig, module_name, projection};
pub use error::AdapterError;
pub use gguf::{export_gguf, merge_into_gguf};
pub use peft::{Adapter, CONFIG_FILE, WEIGHTS_FILE, load_peft, save_peft, write_atomic};

impl Adapter {
    /// The factors on `device`, ready to attach to requests.
    pub fn to_weights(&self, device: &Device) -> Result<LoraWeights, AdapterError> {
        Ok(LoraWeights::new(self.config.scale(), self.pairs.clone(), device)?)
    }

    /// Trainable parameters (A and B of every pair).
    pub fn parameter_count(&self) -> usize {
        self.pairs
            .iter()
            .map(|p| p.a.shape.iter().product::<usize>() + p.b.shape.iter().product::<usize>())
            .sum()
    }
}
