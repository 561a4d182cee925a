//! AArch64 NEON dot products of Q4_K / Q6_K weight rows with Q8_K activation rows, after ggml's
//! `ggml_vec_dot_q4_K_q8_K` and `ggml_vec_dot_q6_K_q8_K` (ggml-cpu/arch/arm/quants.c): integer
//! sums per sub-block, scaled by the 6- or 8-bit sub-block scales in i32, one f32 step per super-
//! block. The minimums (Q4_K) and the offset of 32 (Q6_K) come from the activation block sums.
//! As in `neon.rs`, every kernel comes with `sdot` (`DOT = true`) and without.
#![allow(unsafe_code)]

use std::arch::aarch64::*;

use super::kscalar::{Q4_K_BYTES, Q6_K_BYTES, k4_scales};
use super::neon::{dot16, dot32, f16_at};
use super::per_row;
use crate::Q8KBlock;

/// `Σ a_i b_i` over the sixteen i16 lanes of `a` and of `b` (two vectors each), in i32.
#[inline]
#[target_feature(enable = "neon")]
fn dot_i16(a: [int16x8_t; 2], b: [int16x8_t; 2]) -> i32 {
    let s = vmull_s16(vget_low_s16(a[0]), vget_low_s16(b[0]));
    let s = vmlal_high_s16(s, a[0], b[0]);
    let s = vmlal_s16(s, vget_low_s16(a[1]), vget_low_s16(b[1]));
    vaddvq_s32(vmlal_high_s16(s, a[1], b[1]))
}

/// The sixteen `bsums` of an activation block, as two vectors.
#[inline]
#[target_feature(enable = "neon")]
fn bsums(a: &Q8KBlock) -> [int16x8_t; 2] {
    // SAFETY: `bsums` is 16 i16, so both 8-lane loads are inside it.
    unsafe { [vld1q_s16(a.bsums.as_ptr()), vld1q_s16(a.bsums.as_ptr().add(8))] }
}

/// Q4_K: `d·Σ sc_j·Σ q·a − dmin·Σ m_j·Σ a` per super-block, as the scalar kernel computes it.
///
/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[target_feature(enable = "neon")]
unsafe fn q4_k_rows<const N: usize, const DOT: bool>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * Q4_K_BYTES && act.len() >= N * blocks);
    let m4 = vdupq_n_u8(0x0f);
    let mut out = [0.0f32; 4];
    for b in 0..blocks {
        let blk = &w[b * Q4_K_BYTES..(b + 1) * Q4_K_BYTES];
        let p = blk.as_ptr();
        // SAFETY: `blk` is one whole block, so bytes 0..4 (d, dmin) are readable.
        let (d, dmin) = unsafe { (f16_at(p), f16_at(p.add(2))) };
        let (sc, mn) = k4_scales(&blk[4..16]);
        // SAFETY: `mn` is 8 bytes.
        let mins = vreinterpretq_s16_u16(vmovl_u8(unsafe { vld1_u8(mn.as_ptr()) }));
        let mut sumi = [vdupq_n_s32(0); N];
        for j in 0..4 {
            // SAFETY: bytes 16 + 32 j .. 48 + 32 j lie inside the 144-byte block.
            let (q0, q1) = unsafe { (vld1q_u8(p.add(16 + 32 * j)), vld1q_u8(p.add(32 + 32 * j))) };
            // Sub-block 2 j is the low nibbles of the 32 bytes, sub-block 2 j + 1 the high ones.
            let lo = [vandq_u8(q0, m4), vandq_u8(q1, m4)].map(|v| vreinterpretq_s8_u8(v));
            let hi = [vshrq_n_u8(q0, 4), vshrq_n_u8(q1, 4)].map(|v| vreinterpretq_s8_u8(v));
            let (s_lo, s_hi) = (i32::from(sc[2 * j]), i32::from(sc[2 * j + 1]));
            for k in 0..N {
                let y = act[k * blocks + b].qs[64 * j..64 * j + 64].as_ptr();
                // SAFETY: `y` points to 64 readable bytes; the caller guarantees the extension
                // where `DOT`.
                let (p_lo, p_hi) = unsafe { (dot32::<DOT>(lo, y), dot32::<DOT>(hi, y.add(32))) };
                sumi[k] = vmlaq_n_s32(vmlaq_n_s32(sumi[k], p_lo, s_lo), p_hi, s_hi);
            }
        }
        for k in 0..N {
            let a = &act[k * blocks + b];
            let [lo, hi] = bsums(a);
            // Σ a over each 32-element sub-block: adjacent pairs of the 16-element sums.
            let sub = vpaddq_s16(lo, hi);
            let sumi_m = vaddvq_s32(vmlal_high_s16(
                vmull_s16(vget_low_s16(mins), vget_low_s16(sub)),
                mins,
                sub,
            ));
            out[k] += d * a.d * vaddvq_s32(sumi[k]) as f32 - dmin * a.d * sumi_m as f32;
        }
    }
    out
}

/// Q6_K: `d·Σ sc_s·Σ (q − 32)·a` per super-block, with `q` taken unsigned (0..64) and the offset
/// subtracted as `32·Σ sc_s·Σ a`.
///
/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[target_feature(enable = "neon")]
unsafe fn q6_k_rows<const N: usize, const DOT: bool>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * Q6_K_BYTES && act.len() >= N * blocks);
    let (m4, m30) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x30));
    let mut out = [0.0f32; 4];
    for b in 0..blocks {
        let blk = &w[b * Q6_K_BYTES..(b + 1) * Q6_K_BYTES];
        let p = blk.as_ptr();
        // SAFETY: `blk` is one whole 210-byte block: the 16 scales at 192, d at 208.
        let (d, scales) = unsafe { (f16_at(p.add(208)), vld1q_s8(p.add(192).cast())) };
        let scales = [vmovl_s8(vget_low_s8(scales)), vmovl_high_s8(scales)];
        let sc = |s: usize| i32::from(blk[192 + s] as i8);
        let mut sumi = [vdupq_n_s32(0); N];
        for h in 0..2 {
            // SAFETY: ql at 64 h .. 64 h + 64 and qh at 128 + 32 h .. 160 + 32 h lie inside the block.
            let (ql, qh) = unsafe {
                let ql = p.add(64 * h);
                let qh = p.add(128 + 32 * h);
                (
                    [
                        vld1q_u8(ql),
                        vld1q_u8(ql.add(16)),
                        vld1q_u8(ql.add(32)),
                        vld1q_u8(ql.add(48)),
                    ],
                    [vld1q_u8(qh), vld1q_u8(qh.add(16))],
                )
            };
            for v in 0..2 {
                // Elements 32 g + 16 v .. + 16 of this half: 4 bits of `ql`, bits 2 g, 2 g + 1
                // of `qh` on top (moved to bits 4 and 5).
                let q = [
                    vorrq_u8(vandq_u8(ql[v], m4), vandq_u8(vshlq_n_u8(qh[v], 4), m30)),
                    vorrq_u8(vandq_u8(ql[v + 2], m4), vandq_u8(vshlq_n_u8(qh[v], 2), m30)),
                    vorrq_u8(vshrq_n_u8(ql[v], 4), vandq_u8(qh[v], m30)),
                    vorrq_u8(vshrq_n_u8(ql[v + 2], 4), vandq_u8(vshrq_n_u8(qh[v], 2), m30)),
                ]
                .map(|v| vreinterpretq_s8_u8(v));
                for (g, &q) in q.iter().enumerate() {
                    let (s, at) = (8 * h + 2 * g + v, 128 * h + 32 * g + 16 * v);
                    for k in 0..N {
                        let y = act[k * blocks + b].qs[at..at + 16].as_ptr();
                        // SAFETY: `y` points to 16 readable bytes; the caller guarantees the
                        // extension where `DOT`.
                        let prod = unsafe { dot16::<DOT>(vdupq_n_s32(0), q, vld1q_s8(y)) };
                        sumi[k] = vmlaq_n_s32(sumi[k], prod, sc(s));
                    }
                }
            }
        }
        for k in 0..N {
            let a = &act[k * blocks + b];
            let total = vaddvq_s32(sumi[k]) - 32 * dot_i16(scales, bsums(a));
            out[k] += d * a.d * total as f32;
        }
    }
    out
}

/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q4_k_tile<const DOT: bool>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: same contract as ours.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => q4_k_rows::<1, DOT>(w, act, blocks),
            2 => q4_k_rows::<2, DOT>(w, act, blocks),
            3 => q4_k_rows::<3, DOT>(w, act, blocks),
            4 => q4_k_rows::<4, DOT>(w, act, blocks),
            _ => per_row(act, blocks, |a| q4_k_rows::<1, DOT>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// With `DOT`, the CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q6_k_tile<const DOT: bool>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: same contract as ours.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => q6_k_rows::<1, DOT>(w, act, blocks),
            2 => q6_k_rows::<2, DOT>(w, act, blocks),
            3 => q6_k_rows::<3, DOT>(w, act, blocks),
            4 => q6_k_rows::<4, DOT>(w, act, blocks),
            _ => per_row(act, blocks, |a| q6_k_rows::<1, DOT>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// NEON must be available (it is on every AArch64 CPU).
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the plain-NEON kernels need nothing beyond the baseline.
    unsafe { q4_k_tile::<false>(w, act, blocks) }
}

/// # Safety
/// NEON must be available (it is on every AArch64 CPU).
#[target_feature(enable = "neon")]
pub(super) unsafe fn q6_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the plain-NEON kernels need nothing beyond the baseline.
    unsafe { q6_k_tile::<false>(w, act, blocks) }
}

/// # Safety
/// NEON and the dot-product extension must be available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_k_dot(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the extension.
    unsafe { q4_k_tile::<true>(w, act, blocks) }
}

/// # Safety
/// NEON and the dot-product extension must be available.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q6_k_dot(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the extension.
    unsafe { q6_k_tile::<true>(w, act, blocks) }
}
