//! The small per-row loops of a Llama block on host f32 buffers: RMSNorm (Zhang & Sennrich,
//! 2019), RoPE in GGUF's adjacent-pair layout (Su et al., 2021), SiLU gating (Shazeer, 2020) and
//! one head's causal attention over a cache (softmax of scaled dot products, then the weighted sum
//! of values), as ggml-cpu's `ggml_compute_forward_{rms_norm,rope,swiglu,soft_max}` do.
//!
//! They exist because a decode step does little arithmetic per op: run as separate tensor ops,
//! each would pay an allocation and a dispatch for a few hundred floats, which costs more than the
//! arithmetic. Plain Rust with fixed-width lane accumulators, compiled for the baseline target
//! (NEON on AArch64) and, on x86-64, again with AVX2, picked at run time like the matmul kernels.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use crate::Isa;

/// Defines `pub fn $name` that runs `$body` compiled with AVX2 where the CPU has it.
///
/// Products and sums stay separate (no fused multiply-add): the logits' 8-bit activation noise
/// amplifies last-bit changes here, and unfused arithmetic keeps them where the tensor ops had them.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if Isa::best() != Isa::Scalar {
                    // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2, and
                    // `Isa::best` only returns one this CPU has.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Lanes of the accumulators: two AVX2 registers, so sums are independent chains.
const LANES: usize = 16;

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    // Halving tree: four dependent vector adds instead of fifteen dependent scalar ones.
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

multiversion! {
    /// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gain` for each row `r` of `gain.len()` values.
    pub fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
        let dim = gain.len();
        for (row, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let scale = 1.0 / (dot_lanes(row, row) / dim as f32 + eps).sqrt();
            for ((o, &v), &g) in out.iter_mut().zip(row).zip(gain) {
                *o = v * scale * g;
            }
        }
    }
}

multiversion! {
    /// Rotates every head of one position in place: `x` is `[heads, head_dim]`, `cos` and `sin`
    /// are that position's `[head_dim / 2]` angles; pair `(x[2i], x[2i+1])` turns by angle `i`.
    pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = cos.len();
        for head in x.chunks_exact_mut(2 * half) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (e, o) = (pair[0], pair[1]);
                pair[0] = e * c - o * s;
                pair[1] = e * s + o * c;
            }
        }
    }
}

multiversion! {
    /// SwiGLU's gate: `gate[i] = silu(gate[i]) * up[i]`, with `silu(x) = x / (1 + e^-x)`.
    pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    }
}

/// One query head's attention at one position over `t` cached positions: `q` and `out` are
/// `[head_dim]`, `keys` and `values` are `[t, head_dim]`, `scores` is scratch of at least `t`.
/// Computes `out = softmax(scale * keys q) values`.
pub fn attend(q: &[f32], keys: &[f32], values: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    assert!(keys.len() == values.len() && keys.len().is_multiple_of(hd) && out.len() == hd);
    assert!(scores.len() >= keys.len() / hd, "scores has room for every position");
    #[cfg(target_arch = "x86_64")]
    if Isa::best() != Isa::Scalar && hd.is_multiple_of(LANES) {
        // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2; lengths were checked.
        unsafe { x86::attend(q, keys, values, scale, scores, out) };
        return;
    }
    attend_portable(q, keys, values, scale, scores, out);
}

/// The reference for [`attend`]; the AVX2 version computes bit for bit the same.
fn attend_portable(q: &[f32], keys: &[f32], values: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    let t = keys.len() / hd;
    for (s, k) in scores[..t].iter_mut().zip(keys.chunks_exact(hd)) {
        *s = dot_lanes(q, k);
    }
    softmax(&mut scores[..t], scale);
    out.fill(0.0);
    for (&p, v) in scores[..t].iter().zip(values.chunks_exact(hd)) {
        out.iter_mut().zip(v).for_each(|(o, &x)| *o += p * x);
    }
}

/// Attention with explicit AVX2: the compiler, left alone, vectorizes across keys with gathers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::softmax;

    /// [`super::dot_lanes`] for `a.len()` a multiple of 16, with the same order of operations.
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

    /// # Safety
    /// AVX2 must be available; `q.len()` is a multiple of 16, `keys` and `values` are whole rows
    /// of it, `scores` holds a score per row and `out` is one row.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn attend(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let hd = q.len();
        let t = keys.len() / hd;
        for (s, k) in scores[..t].iter_mut().zip(keys.chunks_exact(hd)) {
            // SAFETY: `k` is one row, as long as `q`.
            *s = unsafe { dot(q, k) };
        }
        softmax(&mut scores[..t], scale);
        // Columns 64 at a time, so the eight accumulators stay in registers across all rows.
        for c0 in (0..hd).step_by(64) {
            let width = (hd - c0).min(64);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &p) in scores[..t].iter().enumerate() {
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

/// `x = softmax(scale * x)`.
#[inline]
fn softmax(x: &mut [f32], scale: f32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_scales_each_row_to_unit_root_mean_square() {
        let x = [3.0, 4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 8];
        rms_norm(&x, &[1.0, 1.0, 2.0, 1.0], 0.0, &mut out);
        assert_eq!(&out[..2], &[1.2, 1.6]);
        assert_eq!(&out[4..], &[1.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn rope_rotates_adjacent_pairs_of_every_head() {
        let mut x = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]; // two heads of 4
        let (c, s) = (0.6f32, 0.8f32);
        rope(&mut x, &[c, 1.0], &[s, 0.0]);
        assert_eq!(x, [0.6, 0.8, 0.0, 1.0, 0.6, 0.8, 0.0, 1.0]);
    }

    #[test]
    fn attention_weights_values_by_the_softmax_of_scaled_scores() {
        let q = [1.0, 0.0];
        let keys = [0.0, 0.0, 2.0, 0.0]; // scores 0 and 2 (scale 1)
        let values = [1.0, 0.0, 0.0, 1.0];
        let (mut scores, mut out) = ([0.0; 2], [0.0; 2]);
        attend(&q, &keys, &values, 1.0, &mut scores, &mut out);
        let p1 = 2f32.exp() / (1.0 + 2f32.exp());
        assert!(
            (out[0] - (1.0 - p1)).abs() < 1e-6 && (out[1] - p1).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn simd_attention_is_bit_identical_to_the_portable_loop() {
        for (hd, t) in [(64, 1), (64, 37), (128, 9), (80, 5)] {
            let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.37).sin()).collect();
            let keys: Vec<f32> = (0..t * hd).map(|i| (i as f32 * 0.11).cos()).collect();
            let values: Vec<f32> = (0..t * hd).map(|i| (i as f32 * 0.07).sin()).collect();
            let (mut scores, mut fast, mut slow) = (vec![0.0; t], vec![0.0; hd], vec![0.0; hd]);
            attend(&q, &keys, &values, 0.125, &mut scores, &mut fast);
            attend_portable(&q, &keys, &values, 0.125, &mut scores, &mut slow);
            assert_eq!(fast, slow, "hd {hd}, t {t}");
        }
    }

    #[test]
    fn attention_matches_the_softmax_written_out() {
        for hd in [64, 128] {
            let t = 7;
            let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.37).sin()).collect();
            let keys: Vec<f32> = (0..t * hd).map(|i| (i as f32 * 0.11).cos()).collect();
            let values: Vec<f32> = (0..t * hd).map(|i| (i as f32 * 0.07).sin()).collect();
            let (mut scores, mut out) = (vec![0.0; t], vec![0.0; hd]);
            attend(&q, &keys, &values, 0.125, &mut scores, &mut out);
            // The same attention, written out.
            let s: Vec<f32> = keys
                .chunks(hd)
                .map(|k| 0.125 * k.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            for d in 0..hd {
                let want: f32 = (0..t).map(|j| e[j] / sum * values[j * hd + d]).sum();
                assert!((out[d] - want).abs() < 1e-5, "hd {hd}, d {d}: {} vs {want}", out[d]);
            }
        }
    }

    #[test]
    fn silu_mul_gates_up_by_silu_of_gate() {
        let mut g = [0.0, 1.0];
        silu_mul(&mut g, &[5.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
    }
}
