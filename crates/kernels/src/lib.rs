//! CPU hot loops that no crate does well: matrix products computed directly on GGUF's packed
//! weight blocks, as llama.cpp's `ggml-cpu` does.
//!
//! Decoding is bound by memory bandwidth: every weight is read once per token, so weights stay
//! packed (4.5-8.5 bits each) and each activation row is quantized to 8 bits once per product
//! ([`Q8Block`], llama.cpp's `block_q8_0` / `block_q8_1`), letting the inner loop multiply small
//! integers. Quantizing activations the way llama.cpp does also makes our logits agree with its.
//!
//! Supported weight blocks: Q4_0, Q4_1, Q8_0. Other types are dequantized by the caller.

mod dot;
mod matmul;
mod q8;

pub use matmul::{BlockFormat, QMatrix, QMatrixError};
pub use q8::{Q8Block, quantize_row_q8};

/// Elements per block of every supported format.
pub const BLOCK: usize = 32;
