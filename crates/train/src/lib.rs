//! QLoRA-style fine-tuning (Dettmers et al., 2023; Hu et al., 2021) from JSONL datasets: the
//! base stays frozen, only the LoRA factors get gradients and optimizer state, and the result
//! is written in PEFT's layout so PEFT, vLLM and Ollama load it.
//!
//! Design: gradients flow through burn's autodiff. On the CPU the frozen base stays in the
//! file's blocks: its projections are a custom autodiff op (airlock-model's
//! `layers/autodiff.rs`) whose two passes dequantize a slice of rows at a time. Each
//! example of a batch runs its own forward and backward pass, weighted to the batch's token
//! mean, so only one sequence's activations are alive at a time; validation runs without
//! autodiff.

mod batching;
pub mod checkpoint;
mod config;
pub mod data;
mod error;
mod plot;
mod run;
mod state;

pub use config::{Length, RunPaths, Schedule, TrainConfig, TrainOptions};
pub use error::TrainError;
pub use run::{RunOptions, Summary, batch_loss, learning_rate, load_base, total_steps, train};
pub use state::{LoraState, Param};
