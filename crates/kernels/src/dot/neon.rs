//! AArch64 NEON dot products of Q4_0 / Q4_1 / Q8_0 weight rows with Q8 activation rows, after
//! ggml's `ggml_vec_dot_q4_0_q8_0`, `..._q4_1_q8_1`, `..._q8_0_q8_0` (ggml-cpu/arch/arm/quants.c):
//! unpack a block to two 16-byte vectors, multiply with the activations into four i32 sums, scale
//! in f32. Every kernel comes twice: with the dot-product extension's `sdot` (`DOT = true`) and
//! with plain NEON widening multiplies and pairwise adds (`DOT = false`).
//!
//! Functions carry `#[target_feature(enable = "neon")]` although NEON is in every AArch64
//! baseline: Rust only lets a function call the intrinsics safely when it names the feature.
#![allow(unsafe_code)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::per_row;
use crate::Q8Block;

const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q8_0: u8 = 2;

const fn block_bytes(format: u8) -> usize {
    match format {
        Q4_0 => 18,
        Q4_1 => 20,
        _ => 34,
    }
}

/// The little-endian f16 at `p`, widened with `fcvt` (ggml's `__fp16` cast): the f16 intrinsics
/// are unstable in Rust, and `half` would take a software path on CPUs without FEAT_FP16.
///
/// # Safety
/// `p` must point to 2 readable bytes.
#[inline(always)]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes; the read is unaligned.
    let bits = u16::from_le(unsafe { p.cast::<u16>().read_unaligned() });
    let out: f32;
    // SAFETY: `fcvt` from half to single precision is base AArch64 floating point (only f16
    // arithmetic, FEAT_FP16, is optional); it reads and writes one register each, nothing else.
    unsafe {
        asm!(
            "fcvt {out:s}, {bits:h}",
            out = out(vreg) out,
            bits = in(vreg) bits,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// `acc` plus the products of `a` and `b`, each lane summing four consecutive ones (`sdot`).
///
/// `vdotq_s32` is still unstable in Rust (rust-lang/rust#117224), hence the assembly. The
/// kernels are generic over `DOT`, and a function's target features cannot depend on a const
/// parameter, so none of them carries `dotprod` (nor could a `dotprod` function be inlined into
/// them): the template tells the assembler of the extension instead.
///
/// # Safety
/// The CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the caller guarantees FEAT_DotProd; the instruction touches three registers only.
    unsafe {
        asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `acc` plus the sixteen products of `a` and `b` summed into four lanes, with `sdot` when
/// `DOT`, otherwise with widening multiplies (`smull`) and pairwise accumulates (`sadalp`),
/// exact for any bytes. The two group the products into lanes differently; the lanes' total is
/// the same.
///
/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn dot16<const DOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if DOT {
        // SAFETY: the caller guarantees the extension.
        unsafe { sdot(acc, a, b) }
    } else {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, lo), hi)
    }
}

/// The products of 32 bytes `x` (two vectors) with the 32 bytes at `y`, summed into four lanes.
///
/// # Safety
/// `y` must point to 32 readable bytes; with `DOT`, the CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn dot32<const DOT: bool>(x: [int8x16_t; 2], y: *const i8) -> int32x4_t {
    // SAFETY: the caller guarantees 32 readable bytes at `y`, and the extension where `DOT`.
    unsafe {
        dot16::<DOT>(
            dot16::<DOT>(vdupq_n_s32(0), x[0], vld1q_s8(y)),
            x[1],
            vld1q_s8(y.add(16)),
        )
    }
}

/// 16 bytes of nibbles at `p`: low nibbles (elements 0..16), high nibbles (16..32).
///
/// # Safety
/// `p` must point to 16 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(p: *const u8) -> [int8x16_t; 2] {
    // SAFETY: the caller guarantees 16 readable bytes; `ld1` has no alignment requirement.
    let raw = unsafe { vld1q_u8(p) };
    [vandq_u8(raw, vdupq_n_u8(0x0f)), vshrq_n_u8(raw, 4)].map(|v| vreinterpretq_s8_u8(v))
}

/// Block `b` of `w` against block `b` of each of the `N` activation rows, added to `acc`
/// (scaled integer products) and `mins` (Q4_1's `m * s`).
///
/// Always inlined, so that no block pays for a call (which LLVM left in some tiles): the NEON
/// target feature cannot be combined with `inline(always)`, so the intrinsics need `unsafe`.
///
/// # Safety
/// `w` must hold at least `b + 1` blocks of `F`; with `DOT`, the CPU must have the dot-product
/// extension.
#[inline(always)]
unsafe fn step<const F: u8, const N: usize, const DOT: bool>(
    w: &[u8],
    act: &[Q8Block],
    blocks: usize,
    b: usize,
    acc: &mut [float32x4_t; N],
    mins: &mut [f32; N],
) {
    // SAFETY: NEON is in every AArch64 baseline; the caller guarantees block `b` lies inside `w`,
    // so every offset below does too.
    let (dw, x, m) = unsafe {
        let p = w.as_ptr().add(b * block_bytes(F));
        match F {
            Q4_0 => (f16_at(p), nibbles(p.add(2)).map(|v| vsubq_s8(v, vdupq_n_s8(8))), 0.0),
            Q4_1 => (f16_at(p), nibbles(p.add(4)), f16_at(p.add(2))),
            _ => (f16_at(p), [vld1q_s8(p.add(2).cast()), vld1q_s8(p.add(18).cast())], 0.0),
        }
    };
    for k in 0..N {
        let a = &act[k * blocks + b];
        // SAFETY: NEON is in every AArch64 baseline; `a.qs` is 32 bytes; the caller guarantees
        // the extension where `DOT`.
        acc[k] = unsafe { vfmaq_n_f32(acc[k], vcvtq_f32_s32(dot32::<DOT>(x, a.qs.as_ptr())), dw * a.d) };
        if F == Q4_1 {
            mins[k] += m * a.s;
        }
    }
}

/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[target_feature(enable = "neon")]
unsafe fn rows<const F: u8, const N: usize, const DOT: bool>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * block_bytes(F) && act.len() >= N * blocks);
    // Two accumulator sets so consecutive blocks' FMAs do not wait on each other, for every `N`:
    // a row's sum must not depend on how many rows share its tile (batch invariance).
    let (mut acc0, mut acc1) = ([vdupq_n_f32(0.0); N], [vdupq_n_f32(0.0); N]);
    let mut mins = [0.0f32; N];
    let mut b = 0;
    // SAFETY (both loops): `b < blocks` and `w` holds `blocks` blocks (asserted above); the
    // caller guarantees the extension where `DOT`.
    while b + 1 < blocks {
        unsafe {
            step::<F, N, DOT>(w, act, blocks, b, &mut acc0, &mut mins);
            step::<F, N, DOT>(w, act, blocks, b + 1, &mut acc1, &mut mins);
        }
        b += 2;
    }
    if b < blocks {
        unsafe { step::<F, N, DOT>(w, act, blocks, b, &mut acc0, &mut mins) };
    }
    let mut out = [0.0f32; 4];
    for k in 0..N {
        out[k] = vaddvq_f32(vaddq_f32(acc0[k], acc1[k])) + mins[k];
    }
    out
}

/// Dispatches on the number of activation rows in `act` (1 to 4).
///
/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile<const F: u8, const DOT: bool>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: same contract as ours.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => rows::<F, 1, DOT>(w, act, blocks),
            2 => rows::<F, 2, DOT>(w, act, blocks),
            3 => rows::<F, 3, DOT>(w, act, blocks),
            4 => rows::<F, 4, DOT>(w, act, blocks),
            _ => per_row(act, blocks, |a| rows::<F, 1, DOT>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// NEON must be available (it is on every AArch64 CPU).
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the plain-NEON kernels need nothing beyond the baseline.
    unsafe { tile::<Q4_0, false>(w, act, blocks) }
}

/// # Safety
/// NEON must be available (it is on every AArch64 CPU).
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_1(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the plain-NEON kernels need nothing beyond the baseline.
    unsafe { tile::<Q4_1, false>(w, act, blocks) }
}

/// # Safety
/// NEON must be available (it is on every AArch64 CPU).
#[target_feature(enable = "neon")]
pub(super) unsafe fn q8_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the plain-NEON kernels need nothing beyond the baseline.
    unsafe { tile::<Q8_0, false>(w, act, blocks) }
}

/// # Safety
/// NEON and the dot-product extension must be available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_0_dot(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the extension.
    unsafe { tile::<Q4_0, true>(w, act, blocks) }
}

/// # Safety
/// NEON and the dot-product extension must be available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_1_dot(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the extension.
    unsafe { tile::<Q4_1, true>(w, act, blocks) }
}

/// # Safety
/// NEON and the dot-product extension must be available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q8_0_dot(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the extension.
    unsafe { tile::<Q8_0, true>(w, act, blocks) }
}
