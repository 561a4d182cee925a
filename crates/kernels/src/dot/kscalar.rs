//! Portable dot products of Q4_K / Q6_K weight rows with Q8_K activation rows (ggml's generic
//! `ggml_vec_dot_q4_K_q8_K` and `ggml_vec_dot_q6_K_q8_K` in ggml-cpu/quants.c; block layouts
//! from `block_q4_K` / `block_q6_K` in ggml-common.h).

use super::per_row;
use super::scalar::f16_at;
use crate::{Q8KBlock, QK_K};

/// Bytes of one `block_q4_K { half d; half dmin; u8 scales[12]; u8 qs[128] }`.
pub(crate) const Q4_K_BYTES: usize = 144;
/// Bytes of one `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d }`.
pub(crate) const Q6_K_BYTES: usize = 210;

/// The eight 6-bit scales and eight 6-bit minimums of a Q4_K block from its 12 packed bytes
/// (`get_scale_min_k4`, done four at a time with ggml's `utmp` masks).
#[inline]
pub(super) fn k4_scales(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    let sc_lo = u0 & KMASK1;
    let sc_hi = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let m_lo = u1 & KMASK1;
    let m_hi = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    let join = |lo: u32, hi: u32| {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&lo.to_le_bytes());
        out[4..].copy_from_slice(&hi.to_le_bytes());
        out
    };
    (join(sc_lo, sc_hi), join(m_lo, m_hi))
}

/// Q4_K: `Σ d·sc_j·Σ q·a − dmin·m_j·Σ a` over the eight 32-element sub-blocks; the minimum term
/// uses the activation block sums.
fn q4_k_row(row: &[u8], act: &[Q8KBlock]) -> f32 {
    row.chunks_exact(Q4_K_BYTES)
        .zip(act)
        .map(|(b, a)| {
            let (sc, m) = k4_scales(&b[4..16]);
            let mut sumi = 0i32;
            for (j, q) in b[16..144].chunks_exact(32).enumerate() {
                let (lo, hi) = (&a.qs[64 * j..64 * j + 32], &a.qs[64 * j + 32..64 * j + 64]);
                let dot_lo: i32 = q.iter().zip(lo).map(|(&q, &y)| i32::from(q & 0xf) * i32::from(y)).sum();
                let dot_hi: i32 = q.iter().zip(hi).map(|(&q, &y)| i32::from(q >> 4) * i32::from(y)).sum();
                sumi += i32::from(sc[2 * j]) * dot_lo + i32::from(sc[2 * j + 1]) * dot_hi;
            }
            let sumi_m: i32 = (0..8)
                .map(|j| i32::from(m[j]) * (i32::from(a.bsums[2 * j]) + i32::from(a.bsums[2 * j + 1])))
                .sum();
            f16_at(b, 0) * a.d * sumi as f32 - f16_at(b, 2) * a.d * sumi_m as f32
        })
        .sum()
}

/// Q6_K: `Σ d·sc_s·Σ (q − 32)·a` over the sixteen 16-element sub-blocks; q is 4 low bits from `ql`
/// and 2 high bits from `qh`.
fn q6_k_row(row: &[u8], act: &[Q8KBlock]) -> f32 {
    row.chunks_exact(Q6_K_BYTES)
        .zip(act)
        .map(|(b, a)| {
            let mut q = [0i32; QK_K];
            for half in 0..2 {
                let ql = &b[64 * half..64 * half + 64];
                let qh = &b[128 + 32 * half..128 + 32 * half + 32];
                let q = &mut q[128 * half..128 * half + 128];
                for l in 0..32 {
                    q[l] = i32::from((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                    q[l + 32] = i32::from((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    q[l + 64] = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    q[l + 96] = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                }
            }
            let sumi: i32 = q
                .chunks_exact(16)
                .zip(a.qs.chunks_exact(16))
                .zip(&b[192..208])
                .map(|((q, y), &sc)| {
                    i32::from(sc as i8) * q.iter().zip(y).map(|(&q, &y)| q * i32::from(y)).sum::<i32>()
                })
                .sum();
            f16_at(b, 208) * a.d * sumi as f32
        })
        .sum()
}

pub(super) fn q4_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    per_row(act, blocks, |a| q4_k_row(w, a))
}

pub(super) fn q6_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    per_row(act, blocks, |a| q6_k_row(w, a))
}
