//! airlock-gguf: read and write GGUF files (the llama.cpp / ggml model format) and decode the ggml
//! block formats their tensors use.
//!
//! Design decisions:
//! - **Untrusted input has caps.** A GGUF file may come from anywhere, so the reader bounds every
//!   count and length it reads (see the `MAX_*` constants), checks each against the bytes that
//!   remain before allocating, rejects overflowing shapes, misaligned, out-of-bounds or
//!   overlapping tensors and duplicate names, and never panics (a fuzz target lives in `fuzz/`).
//! - **Tensor data stays where it is.** [`GgufFile::open`] memory-maps the file and hands out tensor
//!   bytes as slices; nothing is copied until a caller dequantizes. Metadata is decoded eagerly
//!   into a `BTreeMap` of typed [`Value`]s.
//! - **Block formats are ggml's, bit for bit.** [`dequantize`] follows ggml's reference
//!   `dequantize_row_*` decoders and [`quantize`] the `quantize_row_*_ref` encoders; golden tests
//!   check both against gguf-py. Fast dot products on these blocks live in `airlock-kernels`.
//! - **Dimensions are in GGUF order**: `dims[0]` is the row length (fastest-varying), the reverse
//!   of PyTorch's shape.

mod cursor;
mod dequant;
mod error;
mod quant;
mod reader;
mod tensor;
mod types;
mod value;
mod writer;

pub use dequant::dequantize;
pub use error::GgufError;
pub use quant::quantize;
pub use reader::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgufFile, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_DIMS, MAX_KEY_LEN,
    MAX_KV, MAX_STRING_LEN, MAX_TENSORS,
};
pub use tensor::TensorInfo;
pub use types::{GgmlType, QK_K};
pub use value::Value;
pub use writer::GgufWriter;
