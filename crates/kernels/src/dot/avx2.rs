//! AVX2 + FMA + F16C dot products of Q4_0 / Q4_1 / Q8_0 weight rows with Q8 activation rows,
//! after ggml's `ggml_vec_dot_q4_0_q8_0`, `..._q4_1_q8_1`, `..._q8_0_q8_0` (ggml-cpu/arch/x86/
//! quants.c): unpack a block to 32 bytes, `maddubs` + `madd` to eight i32 sums, scale in f32.
//! Q4_1 (the default model's format) also adds in ggml's order, so its sums are llama.cpp's
//! exactly; Q4_0 and Q8_0 use two accumulators for speed (llama.cpp's own Q4_0 path repacks
//! the weights and sums in yet another order, so there is no single order to match).
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::per_row;
use crate::Q8Block;

pub(super) const Q4_0: u8 = 0;
pub(super) const Q4_1: u8 = 1;
pub(super) const Q8_0: u8 = 2;

pub(super) const fn block_bytes(format: u8) -> usize {
    match format {
        Q4_0 => 18,
        Q4_1 => 20,
        _ => 34,
    }
}

/// How far ahead of the block in hand the kernels ask for weights. Decoding streams every weight
/// from memory once, and each kernel's chain of dependent multiply-adds keeps the out-of-order
/// core from issuing loads far enough ahead to keep memory busy. Measured on a 2-core Xeon VM
/// (22 GB/s read bandwidth, high latency): a 4096x4096 Q4_1 matvec streamed 8 GB/s from memory
/// without prefetching and 18 GB/s with it; the default model decoded 72 tokens/s without, and
/// 89 / 97 / 100 / 113-126 / 95 / 88 tokens/s at 512 B / 1 / 4 / 8 / 16 / 32 KiB ahead.
const PREFETCH: usize = 8192;

/// Asks for the weights [`PREFETCH`] bytes past `p` (a hint: an address past the matrix is
/// never read).
#[inline(always)]
pub(super) fn prefetch(p: *const u8) {
    // SAFETY: a prefetch only hints the cache; it never faults, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH).cast()) }
}

/// The little-endian f16 at `p`, widened.
///
/// # Safety
/// `p` must point to 2 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes; the read is unaligned.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// 16 bytes of nibbles at `p` as 32 bytes: low nibbles (elements 0..16) in the low lane, high
/// nibbles (16..32) in the high lane (ggml's `bytes_from_nibbles_32`).
///
/// # Safety
/// `p` must point to 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; `loadu` has no alignment requirement.
    let raw = unsafe { _mm_loadu_si128(p.cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Eight i32 sums of four products each, of unsigned bytes `u` with signed bytes `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn madd_us(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// As [`madd_us`] for two signed operands: moves `x`'s sign onto `y` (ggml's
/// `mul_sum_i8_pairs`). Exact for `x` in -128..=127 and `y` in -127..=127.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn madd_ss(x: __m256i, y: __m256i) -> __m256i {
    madd_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Block `b` of `w` (Q4_0 or Q8_0) against block `b` of each of the `N` activation rows, added
/// to `acc` (scaled integer products).
///
/// # Safety
/// `w` must hold at least `b + 1` blocks of `F`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn step<const F: u8, const N: usize>(
    w: &[u8],
    act: &[Q8Block],
    blocks: usize,
    b: usize,
    acc: &mut [__m256; N],
) {
    // SAFETY: the caller guarantees block `b` lies inside `w`, so every offset below does too.
    let (dw, qx) = unsafe {
        let p = w.as_ptr().add(b * block_bytes(F));
        prefetch(p);
        match F {
            Q4_0 => (f16_at(p), _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8))),
            _ => (f16_at(p), _mm256_loadu_si256(p.add(2).cast())),
        }
    };
    for k in 0..N {
        let a = &act[k * blocks + b];
        // SAFETY: `a.qs` is 32 bytes.
        let qy = unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) };
        let sums = madd_ss(qx, qy);
        acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d), _mm256_cvtepi32_ps(sums), acc[k]);
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const F: u8, const N: usize>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * block_bytes(F) && act.len() >= N * blocks);
    // Two accumulator sets so consecutive blocks' FMAs do not wait on each other, for every `N`:
    // a row's sum must not depend on how many rows share its tile (batch invariance).
    let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    let mut b = 0;
    // SAFETY (both loops): `b < blocks` and `w` holds `blocks` blocks (asserted above).
    while b + 1 < blocks {
        unsafe {
            step::<F, N>(w, act, blocks, b, &mut acc0);
            step::<F, N>(w, act, blocks, b + 1, &mut acc1);
        }
        b += 2;
    }
    if b < blocks {
        unsafe { step::<F, N>(w, act, blocks, b, &mut acc0) };
    }
    let mut out = [0.0f32; 4];
    for k in 0..N {
        out[k] = hsum(_mm256_add_ps(acc0[k], acc1[k]));
    }
    out
}

/// Dispatches on the number of activation rows in `act` (1 to 4).
///
/// # Safety
/// AVX2, FMA and F16C must be available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
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
/// AVX2, FMA and F16C must be available.
pub(super) unsafe fn q4_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { tile::<Q4_0>(w, act, blocks) }
}

/// Q4_1 rows summed as ggml's x86 `ggml_vec_dot_q4_1_q8_1` sums them (its AVX2 code, which its
/// AVX-512 builds run too), so that the result is llama.cpp's to the last bit: per activation
/// row, one 8-lane accumulator taking a fused multiply-add per block in order, the lanes added
/// by [`hsum`]'s tree, and the minimums' `m * s` fused into one f32 sum in order (as GCC
/// compiles ggml's `summs += m * s`), added last. `VNNI` picks `vpdpbusd` for the integer
/// products (the same integers).
///
/// One dependent multiply-add per block makes the chain's latency the limit, so the rest of a
/// block's work avoids port 5 (the shuffle port): `d` and `m` are widened straight from memory,
/// the nibbles come from a 128-bit broadcast load and a variable shift, and `m * s` rides in lane
/// 1 of a vector multiply-add.
///
/// # Safety
/// AVX2, FMA and F16C must be available, and AVX-512 VL and VNNI when `VNNI`.
#[inline(always)]
unsafe fn q4_1_rows<const N: usize, const VNNI: bool>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    assert!(w.len() >= blocks * block_bytes(Q4_1) && act.len() >= N * blocks);
    // SAFETY: the caller guarantees the instruction sets; every pointer read is in bounds:
    // block `b < blocks` lies inside `w` (asserted above) and is 20 bytes, `d` and `m` its first
    // four (the other two lanes of `dm` widen nibbles and are never used); each `a.qs` is 32
    // bytes, and `d`, `s` are the first 8 bytes of a `repr(C)` block.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [_mm_setzero_ps(); N]; // lane 1: Σ m * s
        let (low, high) = (_mm256_set1_epi8(0x0f), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
        for b in 0..blocks {
            let p = w.as_ptr().add(b * block_bytes(Q4_1));
            prefetch(p);
            let dm = _mm_cvtph_ps(_mm_loadl_epi64(p.cast())); // [d, m, _, _]
            let raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(4).cast()));
            let qx = _mm256_and_si256(_mm256_srlv_epi32(raw, high), low);
            for k in 0..N {
                let a = &act[k * blocks + b];
                let qy = _mm256_loadu_si256(a.qs.as_ptr().cast());
                let ds = _mm_castpd_ps(_mm_load_sd(std::ptr::from_ref(a).cast::<f64>())); // [a.d, a.s, 0, 0]
                let sums = if VNNI {
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), qx, qy)
                } else {
                    madd_us(qx, qy)
                };
                let scale = _mm256_broadcastss_ps(_mm_mul_ps(dm, ds)); // d * a.d
                acc[k] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[k]);
                mins[k] = _mm_fmadd_ps(dm, ds, mins[k]);
            }
        }
        let mut out = [0.0f32; 4];
        for k in 0..N {
            out[k] = hsum(acc[k]) + _mm_cvtss_f32(_mm_movehdup_ps(mins[k]));
        }
        out
    }
}

/// Dispatches [`q4_1_rows`] on the number of activation rows in `act` (1 to 4).
///
/// # Safety
/// As [`q4_1_rows`].
#[inline(always)]
pub(super) unsafe fn q4_1_tile<const VNNI: bool>(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller's contract is ours.
    unsafe {
        match super::tile_rows(act.len(), blocks) {
            1 => q4_1_rows::<1, VNNI>(w, act, blocks),
            2 => q4_1_rows::<2, VNNI>(w, act, blocks),
            3 => q4_1_rows::<3, VNNI>(w, act, blocks),
            4 => q4_1_rows::<4, VNNI>(w, act, blocks),
            _ => per_row(act, blocks, |a| q4_1_rows::<1, VNNI>(w, a, blocks)[0]),
        }
    }
}

/// # Safety
/// AVX2, FMA and F16C must be available.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_1(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set; the kernel contract holds the rest.
    unsafe { q4_1_tile::<false>(w, act, blocks) }
}

/// # Safety
/// AVX2, FMA and F16C must be available.
pub(super) unsafe fn q8_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    // SAFETY: the caller guarantees the instruction set.
    unsafe { tile::<Q8_0>(w, act, blocks) }
}
