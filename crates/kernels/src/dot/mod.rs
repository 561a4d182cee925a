//! Dot products of one packed weight row with up to [`TILE`](crate::TILE) quantized activation
//! rows, per block format and instruction set (ggml-cpu's `ggml_vec_dot_*` in `quants.c`,
//! `arch/x86/quants.c` and `arch/arm/quants.c`), and the run-time choice of instruction set.

use std::sync::OnceLock;

use crate::{Q8Block, Q8KBlock};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2k;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kscalar;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neonk;
mod scalar;
#[cfg(test)]
mod tests;

/// `dot(w, act, blocks)`: `w` holds one weight row of `blocks` blocks, `act` holds 1 to 4
/// activation rows of `blocks` blocks each, back to back (`[rows, blocks]`); returns each
/// activation row's dot product with `w` (entries past the rows are zero).
///
/// # Safety
/// The kernel's instruction set must be available on this CPU (see [`Isa::is_available`]).
pub(crate) type RowDot<A> = unsafe fn(w: &[u8], act: &[A], blocks: usize) -> [f32; 4];

/// One kernel per weight format, all of one instruction set.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub q4_0: RowDot<Q8Block>,
    pub q4_1: RowDot<Q8Block>,
    pub q8_0: RowDot<Q8Block>,
    pub q4_k: RowDot<Q8KBlock>,
    pub q6_k: RowDot<Q8KBlock>,
}

static SCALAR: Kernels = Kernels {
    q4_0: scalar::q4_0,
    q4_1: scalar::q4_1,
    q8_0: scalar::q8_0,
    q4_k: kscalar::q4_k,
    q6_k: kscalar::q6_k,
};

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels {
    q4_0: avx2::q4_0,
    q4_1: avx2::q4_1,
    q8_0: avx2::q8_0,
    q4_k: avx2k::q4_k,
    q6_k: avx2k::q6_k,
};

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = Kernels {
    q4_0: avx512::q4_0,
    q4_1: avx512::q4_1,
    q8_0: avx512::q8_0,
    q4_k: avx2k::q4_k,
    q6_k: avx2k::q6_k,
};

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = Kernels {
    q4_0: neon::q4_0,
    q4_1: neon::q4_1,
    q8_0: neon::q8_0,
    q4_k: neonk::q4_k,
    q6_k: neonk::q6_k,
};

#[cfg(target_arch = "aarch64")]
static NEON_DOTPROD: Kernels = Kernels {
    q4_0: neon::q4_0_dot,
    q4_1: neon::q4_1_dot,
    q8_0: neon::q8_0_dot,
    q4_k: neonk::q4_k_dot,
    q6_k: neonk::q6_k_dot,
};

/// An instruction set the kernels are written for. Every variant exists on every target; those
/// of another architecture are never available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust; the reference the others are tested against.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (Haswell, Zen 1 and later).
    Avx2,
    /// The AVX2 set plus AVX-512 F/BW/VL/DQ and VNNI (Ice Lake, Zen 4 and later); K-quants use
    /// the AVX2 kernels.
    Avx512Vnni,
    /// AArch64 Advanced SIMD (NEON), which every AArch64 CPU has, without the dot-product
    /// extension: widening multiplies and pairwise adds (Cortex-A53/A57/A72, Raspberry Pi 4).
    Neon,
    /// NEON plus the dot-product extension, FEAT_DotProd's `sdot` (optional from Armv8.2,
    /// required from Armv8.4: Cortex-A55/A76, Neoverse N1 / Graviton 2, Apple M1 and later).
    NeonDotprod,
}

impl Isa {
    /// Every instruction set, slowest first within each architecture.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Neon, Isa::NeonDotprod];

    /// The fastest instruction set this CPU has, probed once and cached.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            Self::ALL
                .into_iter()
                .rev()
                .find(|isa| isa.is_available())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Whether this CPU can run the kernels of `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                Isa::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512Vnni => false,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => {
                std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Neon | Isa::NeonDotprod => false,
        }
    }

    /// The kernel table; only call its kernels when [`Isa::is_available`] holds.
    pub(crate) fn kernels(self) -> &'static Kernels {
        match self {
            Isa::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &AVX2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => &AVX512,
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512Vnni => &SCALAR,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &NEON,
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => &NEON_DOTPROD,
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Neon | Isa::NeonDotprod => &SCALAR,
        }
    }
}

/// Activation rows in a tile of `len` blocks, rows of `blocks` blocks: 1 to 4 (0 otherwise),
/// found without a division, which would cost as much as a short row's dot product.
#[inline]
pub(crate) fn tile_rows(len: usize, blocks: usize) -> usize {
    match len {
        l if l == blocks => 1,
        l if l == 2 * blocks => 2,
        l if l == 3 * blocks => 3,
        l if l == 4 * blocks => 4,
        _ => 0,
    }
}

/// Applies `dot` to each of the (up to 4) activation rows in `act`.
#[inline]
pub(crate) fn per_row<A>(act: &[A], blocks: usize, dot: impl Fn(&[A]) -> f32) -> [f32; 4] {
    let mut out = [0.0; 4];
    for (o, a) in out.iter_mut().zip(act.chunks_exact(blocks)) {
        *o = dot(a);
    }
    out
}
