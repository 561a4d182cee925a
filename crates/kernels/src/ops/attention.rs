//! One query head's attention at one position over its cache, `softmax(scale * K q) V`: exactly
//! in f32, or as llama.cpp computes it by default (f16 KV cache, no flash attention), bit for bit.
//!
//! llama.cpp's attention is three ggml ops, each rounding in its own way:
//! - `kq = mul_mat(k, q)` and `kqv = mul_mat(v, kq)` multiply f16 by f16 (the cache holds f16;
//!   `q` and the softmax weights are converted to f16 for the product) and sum in f32, in one of
//!   two orders. A pass of several tokens goes through llamafile's `tinyBLAS`: one `W`-lane
//!   accumulator per output, fused multiply-adds along the sum, then a halving tree across the
//!   lanes. A pass of one token goes through `ggml_vec_dot_f16`: four `W`-lane accumulators
//!   taking turns, added pairwise, then a tree (halving on AVX-512; `hadd` pairs on AVX2), plus
//!   any remainder in f64.
//! - `soft_max_ext` scales, exponentiates with `ggml_v_expf`, adds each `W`-lane chunk's tree
//!   into an f64 sum and multiplies by the f32 inverse of that sum.
//!
//! `W` is 16 where ggml is built for AVX-512 and 8 for AVX2 ([`Ggml`]). Positions past the
//! sequence (ggml pads the cache view to 256 with zeros, masked to `-inf`) add exact zeros, so
//! they are skipped here. One last-bit difference anywhere would not stay small: the next layer's
//! 8-bit quantization turns it into a different quantum now and then, and those grow through the
//! layers to logits ~0.2 apart (measured on the default model).

#![allow(unsafe_code)]

use super::expf::{Ggml, expf};
use super::round_to_f16;

/// How [`attend`] multiplies, and so how it rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttnPrecision {
    /// Everything in f32: exact attention.
    F32,
    /// llama.cpp's, in a pass of one token per sequence (a decode step). The query, keys and
    /// values must already be rounded to f16 ([`round_to_f16`]): the query once, the keys and
    /// values as they enter the cache, as llama.cpp stores them.
    F16Decode,
    /// llama.cpp's in a pass of several tokens (a prompt), with the same f16 operands.
    F16Prefill,
}

/// One query head's attention at one position over `t` cached positions: `q` and `out` are
/// `[head_dim]`, `keys` and `values` are `[t, head_dim]`; `scratch` is reused between calls and
/// grown as needed. Computes `out = softmax(scale * keys q) values`.
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    precision: AttnPrecision,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = q.len();
    assert!(hd > 0 && keys.len() == values.len() && keys.len().is_multiple_of(hd) && out.len() == hd);
    let prefill = match precision {
        AttnPrecision::F32 => return exact(q, keys, values, scale, scratch, out),
        AttnPrecision::F16Decode => false,
        AttnPrecision::F16Prefill => true,
    };
    #[cfg(target_arch = "x86_64")]
    {
        use crate::Isa;
        if Ggml::native() == Ggml::Avx512 {
            // SAFETY: `Ggml::Avx512` is native only where `Isa::Avx512Vnni` is available, and that
            // includes AVX-512 F/DQ, AVX2, FMA and F16C.
            unsafe { x86::ggml_avx512(q, keys, values, scale, prefill, scratch, out) };
            return;
        }
        if Isa::best() != Isa::Scalar {
            // SAFETY: every non-scalar x86-64 instruction set includes AVX2, FMA and F16C.
            unsafe { x86::ggml_avx2(q, keys, values, scale, prefill, scratch, out) };
            return;
        }
    }
    // SAFETY: the portable dot products need no particular instruction set.
    unsafe { ggml::<8, Portable<8>>(q, keys, values, scale, prefill, scratch, out) };
}

/// `W` lanes folded onto lane 0 by adding lane `i + w/2` to lane `i` for `w = W, W/2, .., 2`
/// (`_mm512_reduce_add_ps` as GCC expands it, and ggml's `hsum_float_8`), applied to each of
/// `rows[l * n..(l + 1) * n]`, `l < W`, column by column; the result is in `rows[..n]`.
#[inline(always)]
fn halving_rows<const W: usize>(rows: &mut [f32], n: usize) {
    let mut width = W / 2;
    while width > 0 {
        let (low, high) = rows.split_at_mut(width * n);
        for (a, &b) in low.iter_mut().zip(&high[..width * n]) {
            *a += b;
        }
        width /= 2;
    }
}

/// [`halving_rows`] for one vector of lanes.
#[inline(always)]
fn halving<const W: usize>(mut lanes: [f32; W]) -> f32 {
    let mut width = W / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The last step of `ggml_vec_dot_f16`'s reduction on `rows` (`W` rows of `n`), column by
/// column: AVX-512's is the halving tree; AVX2's adds the two halves, then adjacent pairs with
/// `hadd` twice.
#[inline(always)]
fn vec_tree_rows<const W: usize>(flavor: Ggml, rows: &mut [f32], n: usize) {
    if flavor == Ggml::Avx512 || W != 8 {
        return halving_rows::<W>(rows, n);
    }
    let add = |rows: &mut [f32], to: usize, from: usize| {
        for c in 0..n {
            rows[to * n + c] += rows[from * n + c];
        }
    };
    for l in 0..4 {
        add(rows, l, l + 4);
    }
    add(rows, 0, 1);
    add(rows, 2, 3);
    add(rows, 0, 2);
}

/// The score dot products of one ggml build.
trait Dots {
    const FLAVOR: Ggml;
    /// `x · y` as llamafile's `tinyBLAS` sums it (`x.len()` a multiple of the build's width).
    ///
    /// # Safety
    /// The implementation's instruction set must be available.
    unsafe fn tiled(x: &[f32], y: &[f32]) -> f32;
    /// `x · y` as `ggml_vec_dot_f16` sums it.
    ///
    /// # Safety
    /// As [`Dots::tiled`].
    unsafe fn vec(x: &[f32], y: &[f32]) -> f32;
}

/// The dot products in portable Rust for ggml's `W`-lane build: the reference for the SIMD ones,
/// and what CPUs without them run.
struct Portable<const W: usize>;

impl<const W: usize> Dots for Portable<W> {
    const FLAVOR: Ggml = if W == 16 { Ggml::Avx512 } else { Ggml::Avx2 };

    #[inline(always)]
    unsafe fn tiled(x: &[f32], y: &[f32]) -> f32 {
        let mut acc = [0.0f32; W];
        for (a, b) in x.chunks_exact(W).zip(y.chunks_exact(W)) {
            for l in 0..W {
                acc[l] = a[l].mul_add(b[l], acc[l]);
            }
        }
        halving(acc)
    }

    #[inline(always)]
    unsafe fn vec(x: &[f32], y: &[f32]) -> f32 {
        let step = 4 * W;
        let whole = x.len() - x.len() % step;
        let mut acc = [0.0f32; 64]; // [4, W] (W is at most 16)
        let acc = &mut acc[..step];
        for (a, b) in x[..whole].chunks_exact(step).zip(y[..whole].chunks_exact(step)) {
            for (i, (&a, &b)) in a.iter().zip(b).enumerate() {
                acc[i] = a.mul_add(b, acc[i]);
            }
        }
        let mut sum = f64::from(vec_reduce::<W>(Self::FLAVOR, acc, 1)[0]);
        for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
            sum += f64::from(a * b);
        }
        sum as f32
    }
}

/// `ggml_vec_dot_f16`'s reduction of its four accumulators `rows[j * W * n..]` (each `W` rows of
/// `n` columns): the first and third, then the second and fourth, then those two; then the tree.
#[inline(always)]
fn vec_reduce<const W: usize>(flavor: Ggml, rows: &mut [f32], n: usize) -> &[f32] {
    let quarter = W * n;
    for i in 0..quarter {
        rows[i] += rows[2 * quarter + i];
        rows[quarter + i] += rows[3 * quarter + i];
        rows[i] += rows[quarter + i];
    }
    vec_tree_rows::<W>(flavor, &mut rows[..quarter], n);
    &rows[..n]
}

/// `x = softmax(x)` in place as ggml's `soft_max` computes it, `x` a whole number of `W`-lane
/// chunks (`-inf` where masked).
#[inline(always)]
fn softmax<const W: usize>(flavor: Ggml, x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for chunk in x.chunks_exact_mut(W) {
        let mut lanes = [0.0f32; W];
        for (l, v) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *v = expf(flavor, *v - max);
            *l = *v;
        }
        sum += f64::from(halving(lanes));
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// llama.cpp's attention for ggml's `W`-lane build, with that build's dot products `D` (see
/// the module doc).
///
/// # Safety
/// `D`'s instruction set must be available.
#[inline(always)]
unsafe fn ggml<const W: usize, D: Dots>(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    prefill: bool,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let flavor = D::FLAVOR;
    let (hd, t) = (q.len(), keys.len() / q.len());
    let padded = t.div_ceil(W) * W;
    // tinyBLAS takes only sums that are whole vectors, and outputs in fours; ggml's dot
    // product does the rest.
    let (tiled_kq, tiled_kqv) = (prefill && hd.is_multiple_of(W), prefill && hd.is_multiple_of(4));
    let rows = if tiled_kqv { W } else { 4 * W };
    // Every element used below is written before it is read, so the scratch is not cleared.
    let need = padded + rows * hd;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (p, acc) = scratch[..need].split_at_mut(padded); // [padded], [rows, hd]

    for (s, k) in p.iter_mut().zip(keys.chunks_exact(hd)) {
        // SAFETY: the caller guarantees `D`'s instruction set.
        let dot = unsafe { if tiled_kq { D::tiled(k, q) } else { D::vec(k, q) } };
        *s = dot * scale;
    }
    p[t..].fill(f32::NEG_INFINITY);
    softmax::<W>(flavor, p);
    round_to_f16(&mut p[..t]);

    // out[d] = Σ_pos p[pos] v[pos][d]: position `pos` goes to accumulator row `pos % rows`.
    for (r, row) in acc.chunks_exact_mut(hd).enumerate() {
        weigh_row(&p[..t], values, r, rows, row);
    }
    let sums = if tiled_kqv {
        halving_rows::<W>(acc, hd);
        &acc[..hd]
    } else {
        vec_reduce::<W>(flavor, acc, hd)
    };
    out.copy_from_slice(sums);
}

/// One accumulator row of the weighted sum of values: `row[d] = Σ p[pos] values[pos][d]` over
/// `pos = first, first + stride, ..` in that order (fused multiply-adds from zero), a block of
/// columns at a time so that they stay in registers across the positions.
#[inline(always)]
fn weigh_row(p: &[f32], values: &[f32], first: usize, stride: usize, row: &mut [f32]) {
    const COLS: usize = 64;
    let hd = row.len();
    let mut c0 = 0;
    while c0 < hd {
        let width = (hd - c0).min(COLS);
        let mut acc = [0.0f32; COLS];
        for pos in (first..p.len()).step_by(stride) {
            let (w, v) = (p[pos], &values[pos * hd + c0..]);
            if width == COLS {
                for (a, &x) in acc.iter_mut().zip(&v[..COLS]) {
                    *a = x.mul_add(w, *a);
                }
            } else {
                for (a, &x) in acc.iter_mut().zip(&v[..width]) {
                    *a = x.mul_add(w, *a);
                }
            }
        }
        row[c0..c0 + width].copy_from_slice(&acc[..width]);
        c0 += width;
    }
}

/// Exact attention: f32 throughout.
fn exact(q: &[f32], keys: &[f32], values: &[f32], scale: f32, scratch: &mut Vec<f32>, out: &mut [f32]) {
    let hd = q.len();
    let t = keys.len() / hd;
    scratch.clear();
    scratch.resize(t, 0.0);
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::best() != crate::Isa::Scalar && hd.is_multiple_of(super::LANES) {
        // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2; `hd` is a
        // multiple of 16 and the rest of the lengths were checked by `attend`.
        unsafe { x86::exact(q, keys, values, scale, scratch, out) };
        return;
    }
    exact_portable(q, keys, values, scale, scratch, out);
}

/// The reference for [`exact`]; the AVX2 version computes bit for bit the same.
fn exact_portable(q: &[f32], keys: &[f32], values: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    for (s, k) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
        *s = super::dot_lanes(q, k);
    }
    softmax_exact(scores, scale);
    out.fill(0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        out.iter_mut().zip(v).for_each(|(o, &x)| *o += p * x);
    }
}

/// `x = softmax(scale * x)`.
#[inline]
fn softmax_exact(x: &mut [f32], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for s in x.iter_mut() {
        *s *= scale;
        max = max.max(*s);
    }
    let mut sum = 0.0;
    for s in x.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|s| *s *= inv);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Dots, Ggml, ggml, softmax_exact};

    /// `_mm512_reduce_add_ps` as GCC expands it: the halving tree.
    ///
    /// # Safety
    /// AVX-512 F must be available.
    #[inline(always)]
    unsafe fn reduce16(x: __m512) -> f32 {
        // SAFETY: the caller guarantees AVX-512 F.
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x)));
            reduce8(_mm256_add_ps(_mm512_castps512_ps256(x), high))
        }
    }

    /// ggml's `hsum_float_8` (and `hsum(__m256)` in tinyBLAS): the halving tree.
    ///
    /// # Safety
    /// AVX must be available.
    #[inline(always)]
    unsafe fn reduce8(x: __m256) -> f32 {
        // SAFETY: the caller guarantees AVX.
        unsafe {
            let q = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
            let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)))
        }
    }

    /// The dot products of ggml's AVX-512 build.
    pub(super) struct Avx512;

    impl Dots for Avx512 {
        const FLAVOR: Ggml = Ggml::Avx512;

        #[inline(always)]
        unsafe fn tiled(x: &[f32], y: &[f32]) -> f32 {
            // SAFETY: the caller guarantees AVX-512 F; every load is a whole chunk of the slices.
            unsafe {
                let mut acc = _mm512_setzero_ps();
                for (a, b) in x.chunks_exact(16).zip(y.chunks_exact(16)) {
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a.as_ptr()), _mm512_loadu_ps(b.as_ptr()), acc);
                }
                reduce16(acc)
            }
        }

        #[inline(always)]
        unsafe fn vec(x: &[f32], y: &[f32]) -> f32 {
            let whole = x.len() - x.len() % 64;
            // SAFETY: the caller guarantees AVX-512 F; every load is inside a 64-float chunk.
            let mut sum = unsafe {
                let mut acc = [_mm512_setzero_ps(); 4];
                for (a, b) in x[..whole].chunks_exact(64).zip(y[..whole].chunks_exact(64)) {
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let (a, b) = (
                            _mm512_loadu_ps(a[16 * j..].as_ptr()),
                            _mm512_loadu_ps(b[16 * j..].as_ptr()),
                        );
                        *acc = _mm512_fmadd_ps(a, b, *acc);
                    }
                }
                let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
                f64::from(reduce16(v))
            };
            for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
                sum += f64::from(a * b);
            }
            sum as f32
        }
    }

    /// The dot products of ggml's AVX2 build.
    pub(super) struct Avx2;

    impl Dots for Avx2 {
        const FLAVOR: Ggml = Ggml::Avx2;

        #[inline(always)]
        unsafe fn tiled(x: &[f32], y: &[f32]) -> f32 {
            // SAFETY: the caller guarantees AVX2 and FMA; every load is a whole chunk.
            unsafe {
                let mut acc = _mm256_setzero_ps();
                for (a, b) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr()), _mm256_loadu_ps(b.as_ptr()), acc);
                }
                reduce8(acc)
            }
        }

        #[inline(always)]
        unsafe fn vec(x: &[f32], y: &[f32]) -> f32 {
            let whole = x.len() - x.len() % 32;
            // SAFETY: the caller guarantees AVX2 and FMA; every load is inside a 32-float chunk.
            let mut sum = unsafe {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (a, b) in x[..whole].chunks_exact(32).zip(y[..whole].chunks_exact(32)) {
                    for (j, acc) in acc.iter_mut().enumerate() {
                        let (a, b) = (
                            _mm256_loadu_ps(a[8 * j..].as_ptr()),
                            _mm256_loadu_ps(b[8 * j..].as_ptr()),
                        );
                        *acc = _mm256_fmadd_ps(a, b, *acc);
                    }
                }
                let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
                // GGML_F32x8_REDUCE: the two halves, then adjacent pairs with `hadd`.
                let t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let t1 = _mm_hadd_ps(t0, t0);
                f64::from(_mm_cvtss_f32(_mm_hadd_ps(t1, t1)))
            };
            for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
                sum += f64::from(a * b);
            }
            sum as f32
        }
    }

    /// llama.cpp's attention as its AVX-512 build computes it.
    ///
    /// # Safety
    /// AVX-512 F and DQ, AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma,f16c")]
    pub(super) unsafe fn ggml_avx512(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        prefill: bool,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        // SAFETY: the caller guarantees the instruction sets `Avx512` uses.
        unsafe { ggml::<16, Avx512>(q, keys, values, scale, prefill, scratch, out) };
    }

    /// llama.cpp's attention as its AVX2 build computes it.
    ///
    /// # Safety
    /// AVX2, FMA and F16C must be available.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn ggml_avx2(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        prefill: bool,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        // SAFETY: the caller guarantees the instruction sets `Avx2` uses.
        unsafe { ggml::<8, Avx2>(q, keys, values, scale, prefill, scratch, out) };
    }

    /// [`super::super::dot_lanes`] for `a.len()` a multiple of 16, with the same order of
    /// operations. Explicit: the compiler, left alone, vectorizes across keys with gathers.
    ///
    /// # Safety
    /// AVX2 must be available; `a` and `b` are the same length, a multiple of 16.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        // SAFETY: every load is inside `a` and `b` (the caller's length contract).
        unsafe {
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for c in (0..a.len()).step_by(16) {
                lo = _mm256_add_ps(
                    lo,
                    _mm256_mul_ps(_mm256_loadu_ps(pa.add(c)), _mm256_loadu_ps(pb.add(c))),
                );
                hi = _mm256_add_ps(
                    hi,
                    _mm256_mul_ps(_mm256_loadu_ps(pa.add(c + 8)), _mm256_loadu_ps(pb.add(c + 8))),
                );
            }
            // The halving tree: lanes i + 8, i + 4, i + 2, i + 1 onto lane i.
            let v8 = _mm256_add_ps(lo, hi);
            let v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
            let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
            let v1 = _mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1));
            _mm_cvtss_f32(v1)
        }
    }

    /// [`super::exact_portable`] with explicit AVX2.
    ///
    /// # Safety
    /// AVX2 must be available; `q.len()` is a multiple of 16, `keys` and `values` are whole rows
    /// of it, `scores` holds a score per row and `out` is one row.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn exact(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let hd = q.len();
        for (s, k) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
            // SAFETY: `k` is one row, as long as `q`.
            *s = unsafe { dot(q, k) };
        }
        softmax_exact(scores, scale);
        // Columns 64 at a time, so the eight accumulators stay in registers across all rows.
        for c0 in (0..hd).step_by(64) {
            let width = (hd - c0).min(64);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &p) in scores.iter().enumerate() {
                let p = _mm256_set1_ps(p);
                let row = values[j * hd + c0..].as_ptr();
                for (r, a) in acc.iter_mut().enumerate().take(width / 8) {
                    // SAFETY: column `c0 + 8r + 7 < hd`, inside row `j`.
                    *a = unsafe { _mm256_add_ps(*a, _mm256_mul_ps(p, _mm256_loadu_ps(row.add(8 * r)))) };
                }
            }
            for (r, a) in acc.iter().enumerate().take(width / 8) {
                // SAFETY: as above, inside `out`.
                unsafe { _mm256_storeu_ps(out[c0 + 8 * r..].as_mut_ptr(), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(hd: usize, t: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let f16 = |v: f32| half::f16::from_f32(v).to_f32();
        let q: Vec<f32> = (0..hd).map(|i| f16((i as f32 * 0.37).sin() * 3.0)).collect();
        let keys: Vec<f32> = (0..t * hd).map(|i| f16((i as f32 * 0.11).cos() * 2.0)).collect();
        let values: Vec<f32> = (0..t * hd).map(|i| f16((i as f32 * 0.07).sin())).collect();
        (q, keys, values)
    }

    #[test]
    fn attention_weights_values_by_the_softmax_of_scaled_scores() {
        let q = [1.0, 0.0];
        let keys = [0.0, 0.0, 2.0, 0.0]; // scores 0 and 2 (scale 1)
        let values = [1.0, 0.0, 0.0, 1.0];
        let (mut scratch, mut out) = (Vec::new(), [0.0; 2]);
        attend(&q, &keys, &values, 1.0, AttnPrecision::F32, &mut scratch, &mut out);
        let p1 = 2f32.exp() / (1.0 + 2f32.exp());
        assert!(
            (out[0] - (1.0 - p1)).abs() < 1e-6 && (out[1] - p1).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn simd_exact_attention_is_bit_identical_to_the_portable_loop() {
        for (hd, t) in [(64, 1), (64, 37), (128, 9), (80, 5)] {
            let (q, keys, values) = case(hd, t);
            let (mut scratch, mut fast, mut slow) = (Vec::new(), vec![0.0; hd], vec![0.0; hd]);
            attend(&q, &keys, &values, 0.125, AttnPrecision::F32, &mut scratch, &mut fast);
            exact_portable(&q, &keys, &values, 0.125, &mut vec![0.0; t], &mut slow);
            assert_eq!(fast, slow, "hd {hd}, t {t}");
        }
    }

    #[test]
    fn attention_matches_the_softmax_written_out() {
        for hd in [64, 128] {
            let t = 7;
            let (q, keys, values) = case(hd, t);
            // The same attention, written out.
            let s: Vec<f32> = keys
                .chunks(hd)
                .map(|k| 0.125 * k.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            for precision in [AttnPrecision::F32, AttnPrecision::F16Decode, AttnPrecision::F16Prefill] {
                let (mut scratch, mut out) = (Vec::new(), vec![0.0; hd]);
                attend(&q, &keys, &values, 0.125, precision, &mut scratch, &mut out);
                // f16 softmax weights are within 2^-11 of the exact ones.
                let tolerance = if precision == AttnPrecision::F32 { 1e-5 } else { 2e-3 };
                for d in 0..hd {
                    let want: f32 = (0..t).map(|j| e[j] / sum * values[j * hd + d]).sum();
                    assert!(
                        (out[d] - want).abs() < tolerance,
                        "{precision:?} hd {hd}, d {d}: {} vs {want}",
                        out[d]
                    );
                }
            }
        }
    }

    #[test]
    fn f16_attention_weights_the_values_by_f16_rounded_softmax_weights() {
        // Scores 0 and 1: weights 1 / (1 + e) and e / (1 + e), neither representable in f16.
        let (q, keys, values) = ([1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]);
        let p1 = 1f32.exp() / (1.0 + 1f32.exp());
        let f16 = |v: f32| half::f16::from_f32(v).to_f32();
        assert_ne!(f16(p1), p1);
        for precision in [AttnPrecision::F16Decode, AttnPrecision::F16Prefill] {
            let (mut scratch, mut out) = (Vec::new(), [0.0; 2]);
            attend(&q, &keys, &values, 1.0, precision, &mut scratch, &mut out);
            assert_eq!(out[1], f16(p1), "{precision:?}");
            assert!((out[0] - f16(1.0 - p1)).abs() <= f32::EPSILON, "{out:?}");
        }
    }

    #[test]
    fn simd_ggml_attention_is_bit_identical_to_the_portable_code_of_this_cpus_build() {
        // Head sizes with and without remainders for either build's vectors; sequences shorter
        // and longer than a vector and than four.
        for (hd, t) in [(64, 1), (64, 37), (128, 9), (80, 70), (24, 5)] {
            let (q, keys, values) = case(hd, t);
            for prefill in [false, true] {
                let precision = if prefill {
                    AttnPrecision::F16Prefill
                } else {
                    AttnPrecision::F16Decode
                };
                let (mut scratch, mut fast, mut slow) = (Vec::new(), vec![0.0; hd], vec![0.0; hd]);
                attend(&q, &keys, &values, 0.125, precision, &mut scratch, &mut fast);
                // SAFETY: the portable dot products need no particular instruction set.
                unsafe {
                    match Ggml::native() {
                        Ggml::Avx512 => {
                            ggml::<16, Portable<16>>(&q, &keys, &values, 0.125, prefill, &mut scratch, &mut slow)
                        }
                        Ggml::Avx2 => {
                            ggml::<8, Portable<8>>(&q, &keys, &values, 0.125, prefill, &mut scratch, &mut slow)
                        }
                    }
                }
                assert_eq!(fast, slow, "hd {hd}, t {t}, {precision:?}");
            }
        }
    }

    #[test]
    fn ggml_sums_a_prompt_and_a_decode_step_in_different_orders() {
        // Same inputs, different summation orders: somewhere the last bits differ.
        let differ = [(64, 37), (64, 100), (128, 9)].iter().any(|&(hd, t)| {
            let (q, keys, values) = case(hd, t);
            let mut outs = [vec![0.0; hd], vec![0.0; hd]];
            for (out, precision) in outs
                .iter_mut()
                .zip([AttnPrecision::F16Decode, AttnPrecision::F16Prefill])
            {
                attend(&q, &keys, &values, 0.125, precision, &mut Vec::new(), out);
            }
            outs[0] != outs[1]
        });
        assert!(differ);
    }

    #[test]
    fn the_halving_tree_adds_lanes_half_a_vector_apart_first() {
        // 1 + 1 survives next to 2^24 only when added first, as the tree does (lanes 4 and 12);
        // in lane order each 1 would round away.
        let mut lanes = [0.0f32; 16];
        lanes[0] = 16_777_216.0;
        lanes[4] = 1.0;
        lanes[12] = 1.0;
        assert_eq!(halving(lanes), 16_777_218.0);
        assert_eq!(lanes.iter().sum::<f32>(), 16_777_216.0);
    }
}
