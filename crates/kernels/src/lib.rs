//! CPU hot loops that no crate does well: matrix products computed directly on GGUF's packed
//! weight blocks, as llama.cpp's `ggml-cpu` does.
//!
//! Decoding is bound by memory bandwidth: every weight is read once per token, so weights stay
//! packed (4.5-8.5 bits each) and each activation row is quantized to 8 bits once per product
//! ([`Q8Block`], llama.cpp's `block_q8_0` / `block_q8_1`; [`Q8KBlock`], its `block_q8_K`, for the
//! K-quants), letting the inner loop multiply small integers.
//!
//! The default model's path rounds exactly as llama.cpp's CPU build does on x86-64: activation
//! blocks as ggml quantizes them, Q4_1 products summed in ggml's order, and in [`ops`] its
//! RMSNorm, RoPE, `expf` and f16 attention. Nothing less would do: each product's 8-bit
//! activations turn a last-bit difference into a whole quantum now and then, and through 30
//! layers those grow to logits ~0.2 apart, while with every rounding matched the default model's
//! logits are llama.cpp's to ~1e-5 (the output head's order) and so are its greedy tokens.
//!
//! Design decisions:
//! - **Hand-written SIMD.** No crate computes dot products of GGUF blocks with quantized
//!   activations (portable-SIMD crates have no `maddubs`/`dpbusd`, and BLAS wants dense floats),
//!   so the kernels in `dot/` are written with `core::arch` intrinsics after llama.cpp's
//!   `ggml-cpu/arch/{x86,arm}/quants.c`: on x86-64 AVX2+FMA+F16C, and AVX-512 VNNI for the
//!   32-element formats; on AArch64 NEON, with the dot-product extension's `sdot` where the CPU
//!   has it and widening multiplies where it does not. `vdotq_s32` is still unstable in Rust, so
//!   `sdot` (and the f16 conversion `fcvt`, to avoid `half`'s software path) is one line of
//!   inline assembly. The scalar kernels are the reference; SIMD agrees with them up to float
//!   summation order because every integer part is exact.
//! - **Chosen once at run time.** [`Isa::best`] probes the CPU the first time it is asked and
//!   caches the answer; a binary built for baseline x86-64 still uses AVX-512 where present, and
//!   one built for baseline AArch64 (Armv8.0) still uses `sdot` on the cores that have it.
//! - **One weight pass per tile.** [`QMatrix::matmul_into`] splits weight rows over the rayon
//!   pool; each kernel call multiplies one weight row with up to [`TILE`] activation rows, so a
//!   prefill loads and unpacks each weight block once per tile while decode streams every row
//!   exactly once.
//!
//! Supported weight blocks: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K. Other types are dequantized by the caller.
//!
//! [`ops`] holds the rest of a decode step's arithmetic on host buffers (RMSNorm, RoPE, SiLU
//! gating, one head's attention), so the model's CPU path runs a whole block without tensor ops.

pub mod amx;
mod dot;
mod matmul;
pub mod ops;
mod q8;
mod q8k;

pub use dot::Isa;
pub use matmul::{BlockFormat, QMatrix, QMatrixError};
pub use q8::{Q8Block, quantize_row_q8};
pub use q8k::{Q8KBlock, QK_K, quantize_row_q8k};

/// Elements per block of Q4_0, Q4_1 and Q8_0.
pub const BLOCK: usize = 32;

/// Activation rows multiplied with each weight row per kernel call.
pub const TILE: usize = 4;
