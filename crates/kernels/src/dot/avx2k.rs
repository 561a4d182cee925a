//! AVX2 + FMA + F16C dot products of Q4_K / Q6_K weight rows with Q8_K activation rows, after
//! ggml's `ggml_vec_dot_q4_K_q8_K` and `ggml_vec_dot_q6_K_q8_K` (ggml-cpu/arch/x86/quants.c).
//! Q6_K's offset of 32 is taken out with the activation block sums instead of a second
//! `maddubs` per vector; the integer result is the same.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::avx2::{f16_at, hsum, prefetch};
use super::kscalar::{Q4_K_BYTES, Q6_K_BYTES, k4_scales};
use super::per_row;
use crate::Q8KBlock;

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_rows<const N: usize>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * Q4_K_BYTES && act.len() >= N * blocks);
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [_mm256_setzero_ps(); N];
    for b in 0..blocks {
        let blk = &w[b * Q4_K_BYTES..(b + 1) * Q4_K_BYTES];
        let p = blk.as_ptr();
        (0..Q4_K_BYTES).step_by(64).for_each(|at| prefetch(p.wrapping_add(at)));
        // SAFETY: `blk` is one whole block, so bytes 0..4 (d, dmin) are readable.
        let (d, dmin) = unsafe { (f16_at(p), f16_at(p.add(2))) };
        let (sc, mn) = k4_scales(&blk[4..16]);
        // Each minimum twice, to pair with the two 16-element sums of its 32-element sub-block.
        let mins16: [i16; 16] = std::array::from_fn(|i| i16::from(mn[i / 2]));
        // SAFETY: `mins16` is 32 bytes.
        let mins = unsafe { _mm256_loadu_si256(mins16.as_ptr().cast()) };
        let mut sumi = [_mm256_setzero_si256(); N];
        for j in 0..4 {
            // SAFETY: bytes 16 + 32 j .. 48 + 32 j lie inside the 144-byte block.
            let bits = unsafe { _mm256_loadu_si256(p.add(16 + 32 * j).cast()) };
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            let (s_lo, s_hi) = (
                _mm256_set1_epi16(i16::from(sc[2 * j])),
                _mm256_set1_epi16(i16::from(sc[2 * j + 1])),
            );
            for k in 0..N {
                let y = act[k * blocks + b].qs[64 * j..64 * j + 64].as_ptr();
                // SAFETY: `y` points to 64 readable bytes.
                let (y_lo, y_hi) = unsafe { (_mm256_loadu_si256(y.cast()), _mm256_loadu_si256(y.add(32).cast())) };
                let p_lo = _mm256_madd_epi16(s_lo, _mm256_maddubs_epi16(lo, y_lo));
                let p_hi = _mm256_madd_epi16(s_hi, _mm256_maddubs_epi16(hi, y_hi));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        for k in 0..N {
            let a = &act[k * blocks + b];
            // SAFETY: `bsums` is 16 i16, 32 bytes.
            let bsums = unsafe { _mm256_loadu_si256(a.bsums.as_ptr().cast()) };
            let msum = _mm256_madd_epi16(mins, bsums);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
            acc_m[k] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * a.d), _mm256_cvtepi32_ps(msum), acc_m[k]);
        }
    }
    let mut out = [0.0f32; 4];
    for k in 0..N {
        out[k] = hsum(acc[k]) - hsum(acc_m[k]);
    }
    out
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_rows<const N: usize>(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * Q6_K_BYTES && act.len() >= N * blocks);
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..blocks {
        let blk = &w[b * Q6_K_BYTES..(b + 1) * Q6_K_BYTES];
        let p = blk.as_ptr();
        (0..Q6_K_BYTES).step_by(64).for_each(|at| prefetch(p.wrapping_add(at)));
        // SAFETY: `blk` is one whole 210-byte block: d at 208, the 16 scales at 192.
        let (d, scales) = unsafe {
            (
                f16_at(p.add(208)),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192).cast())),
            )
        };
        let sc = |s: usize| _mm_set1_epi16(i16::from(blk[192 + s] as i8));
        let mut sumi = [_mm256_setzero_si256(); N];
        for h in 0..2 {
            // SAFETY: ql at 64 h .. 64 h + 64 and qh at 128 + 32 h .. 160 + 32 h lie inside the block.
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(p.add(64 * h).cast()),
                    _mm256_loadu_si256(p.add(64 * h + 32).cast()),
                    _mm256_loadu_si256(p.add(128 + 32 * h).cast()),
                )
            };
            let high =
                |shift: i32| _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m2), 4);
            let q = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), high(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), high(6)),
            ];
            for (g, &q) in q.iter().enumerate() {
                // Sub-block 8 h + 2 g covers the low 16 bytes of `q`, 8 h + 2 g + 1 the high 16.
                let s = 8 * h + 2 * g;
                let scale = _mm256_set_m128i(sc(s + 1), sc(s));
                for k in 0..N {
                    let y = act[k * blocks + b].qs[128 * h + 32 * g..128 * h + 32 * g + 32].as_ptr();
                    // SAFETY: `y` points to 32 readable bytes.
                    let y = unsafe { _mm256_loadu_si256(y.cast()) };
                    let prod = _mm256_madd_epi16(scale, _mm256_maddubs_epi16(q, y));
                    sumi[k] = _mm256_add_epi32(sumi[k], prod);
                }
            }
        }
        for k in 0..N {
            let a = &act[k * blocks + b];
            // SAFETY: `bsums` is 16 i16, 32 bytes.
            let bsums = unsafe { _mm256_loadu_si256(a.bsums.as_ptr().cast()) };
            // Σ sc_s · 32 · Σ a over sub-block s: the weights' offset of 32.
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales, bsums), 5);
            let total = _mm256_sub_epi32(sumi[k], offset);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(total), acc[k]);
        }
    }
    let mut out = [0.0f32; 4];
    for k in 0..N {
        out[k] = hsum(acc[k]);
    }
    out
}

/// # Safety
/// AVX2, FMA and F16C must be available.
pub(super) unsafe fn q4_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => q4_k_rows::<1>(w, act, blocks),
            2 => q4_k_rows::<2>(w, act, blocks),
            3 => q4_k_rows::<3>(w, act, blocks),
            4 => q4_k_rows::<4>(w, act, blocks),
            _ => per_row(act, blocks, |a| q4_k_rows::<1>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available.
pub(super) unsafe fn q6_k(w: &[u8], act: &[Q8KBlock], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => q6_k_rows::<1>(w, act, blocks),
            2 => q6_k_rows::<2>(w, act, blocks),
            3 => q6_k_rows::<3>(w, act, blocks),
            4 => q6_k_rows::<4>(w, act, blocks),
            _ => per_row(act, blocks, |a| q6_k_rows::<1>(w, a, blocks)[0]),
        }
    }
}
