//! AVX-512 VNNI dot products of Q4_0 / Q8_0 weight rows with Q8 activation rows, two blocks per
//! 512-bit register, after ggml's AVX-512 paths for `ggml_vec_dot_q4_0_q8_0` etc.
//! (ggml-cpu/arch/x86/quants.c): `vpdpbusd` replaces AVX2's `maddubs` + `madd` pair. (Q4_1 runs
//! the AVX2 kernel with `vpdpbusd`, which adds in ggml's own order.)
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::avx2::{Q4_0, Q8_0, block_bytes, hsum, prefetch, q4_1_tile, step};
use super::per_row;
use crate::Q8Block;

/// Blocks `b` and `b + 1` of `w` (Q4_0 or Q8_0) against the same blocks of each of the `N`
/// activation rows, added to `acc` (scaled integer products).
///
/// # Safety
/// `w` must hold at least `b + 2` blocks of `F`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn pair<const F: u8, const N: usize>(w: &[u8], act: &[Q8Block], blocks: usize, b: usize, acc: &mut [__m512; N]) {
    let zero = _mm512_setzero_si512();
    // SAFETY: the caller guarantees blocks `b` and `b + 1` lie inside `w`.
    let (dm, qx) = unsafe {
        let p0 = w.as_ptr().add(b * block_bytes(F));
        let p1 = p0.add(block_bytes(F));
        prefetch(p0);
        // Both blocks' f16 `d` in one conversion: [d0, 0, d1, 0].
        let head = |p: *const u8| i32::from(p.cast::<u16>().read_unaligned());
        let dm = _mm_cvtph_ps(_mm_set_epi32(0, 0, head(p1), head(p0)));
        let qx = match F {
            Q4_0 => {
                let raw = _mm256_set_m128i(_mm_loadu_si128(p1.add(2).cast()), _mm_loadu_si128(p0.add(2).cast()));
                let raw = _mm512_castsi256_si512(raw);
                // 128-bit lanes [b0, b0, b1, b1], then the high nibbles of lanes 1 and 3.
                let v = _mm512_shuffle_i64x2(raw, raw, 0b01_01_00_00);
                let v = _mm512_mask_blend_epi64(0b1100_1100, v, _mm512_srli_epi16(v, 4));
                _mm512_and_si512(v, _mm512_set1_epi8(0x0f))
            }
            _ => {
                let lo = _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(2).cast()));
                _mm512_inserti64x4(lo, _mm256_loadu_si256(p1.add(2).cast()), 1)
            }
        };
        (dm, qx)
    };
    // Q8_0: |x| unsigned, with x's sign moved onto y.
    let (ax, neg) = (_mm512_abs_epi8(qx), _mm512_movepi8_mask(qx));
    // Lane 0 of the products for the first block's eight sums, lane 2 for the second's.
    let spread = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    for k in 0..N {
        let (a0, a1) = (&act[k * blocks + b], &act[k * blocks + b + 1]);
        // SAFETY: each `qs` is 32 bytes, and `d`, `s` are the first 8 bytes of a `repr(C)` block.
        let (qy, ds) = unsafe {
            let lo = _mm512_castsi256_si512(_mm256_loadu_si256(a0.qs.as_ptr().cast()));
            let qy = _mm512_inserti64x4(lo, _mm256_loadu_si256(a1.qs.as_ptr().cast()), 1);
            let d0 = _mm_load_sd(std::ptr::from_ref(a0).cast::<f64>());
            (
                qy,
                _mm_castpd_ps(_mm_loadh_pd(d0, std::ptr::from_ref(a1).cast::<f64>())),
            )
        };
        let sums = match F {
            Q4_0 => _mm512_sub_epi32(
                _mm512_dpbusd_epi32(zero, qx, qy),
                _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), qy),
            ),
            _ => _mm512_dpbusd_epi32(zero, ax, _mm512_mask_sub_epi8(qy, neg, zero, qy)),
        };
        // [d0 * a0.d, 0, d1 * a1.d, 0]
        let prod = _mm_mul_ps(dm, ds);
        let scale = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(prod));
        acc[k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sums), acc[k]);
    }
}

/// # Safety
/// The AVX2 set and AVX-512 F/BW/VL/DQ/VNNI must be available.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn rows<const F: u8, const N: usize>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * block_bytes(F) && act.len() >= N * blocks);
    // Two accumulator sets so consecutive pairs' FMAs do not wait on each other (for every `N`,
    // so that a row's sum does not depend on its tile: batch invariance).
    let (mut acc0, mut acc1) = ([_mm512_setzero_ps(); N], [_mm512_setzero_ps(); N]);
    let mut tail = [_mm256_setzero_ps(); N];
    let mut b = 0;
    // SAFETY (all three): every block touched is below `blocks`, and `w` holds `blocks` blocks.
    while b + 3 < blocks {
        unsafe {
            pair::<F, N>(w, act, blocks, b, &mut acc0);
            pair::<F, N>(w, act, blocks, b + 2, &mut acc1);
        }
        b += 4;
    }
    if b + 1 < blocks {
        unsafe { pair::<F, N>(w, act, blocks, b, &mut acc0) };
        b += 2;
    }
    if b < blocks {
        unsafe { step::<F, N>(w, act, blocks, b, &mut tail) };
    }
    let mut out = [0.0f32; 4];
    for k in 0..N {
        out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k])) + hsum(tail[k]);
    }
    out
}

/// Dispatches on the number of activation rows in `act` (1 to 4).
///
/// # Safety
/// The AVX2 set and AVX-512 F/BW/VL/DQ/VNNI must be available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn tile<const F: u8>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: same contract as ours.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => rows::<F, 1>(w, act, blocks),
            2 => rows::<F, 2>(w, act, blocks),
            3 => rows::<F, 3>(w, act, blocks),
            4 => rows::<F, 4>(w, act, blocks),
            _ => per_row(act, blocks, |a| rows::<F, 1>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// The AVX2 set and AVX-512 F/BW/VL/DQ/VNNI must be available.
pub(super) unsafe fn q4_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { tile::<Q4_0>(w, act, blocks) }
}

/// # Safety
/// The AVX2 set and AVX-512 F/BW/VL/DQ/VNNI must be available.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
pub(super) unsafe fn q4_1(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set; the kernel contract holds the rest.
    unsafe { q4_1_tile::<true>(w, act, blocks) }
}

/// # Safety
/// The AVX2 set and AVX-512 F/BW/VL/DQ/VNNI must be available.
pub(super) unsafe fn q8_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { tile::<Q8_0>(w, act, blocks) }
}
