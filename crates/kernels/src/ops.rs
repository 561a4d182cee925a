//! The small per-row loops of a Llama block on host f32 buffers: RMSNorm (Zhang & Sennrich,
//! 2019), RoPE in GGUF's adjacent-pair layout (Su et al., 2021), SiLU gating (Shazeer, 2020) and
//! one head's causal attention over a cache (softmax of scaled dot products, then the weighted sum
//! of values), as ggml-cpu's `ggml_compute_forward_{rms_norm,rope,swiglu,soft_max}` do.
//!
//! They exist because a decode step does little arithmetic per op: run as separate tensor ops,
//! each would pay an allocation and a dispatch for a few hundred floats, which costs more than the
//! arithmetic. Plain Rust with fixed-width lane accumulators, compiled twice: once for the
//! baseline target and once with AVX2 enabled, picked at run time like the matmul kernels.

#![allow(unsafe_code)]

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
                    // SAFETY: every non-scalar instruction set includes AVX2, and
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
    acc.iter().sum::<f32>() + tail
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

multiversion! {
    /// The attention of the query heads that share one key/value head (grouped-query attention)
    /// at one position, over `t` cached positions: `q` and `out` are `[n_rep, head_dim]`, `keys`
    /// and `values` are `[t, head_dim]`, `scores` is scratch of at least `n_rep * t`. For each
    /// query head `r`: `out[r] = softmax(scale * keys q[r]) values`. The group is done together
    /// so that each key and value row is read once for all of its query heads.
    pub fn attend(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        hd: usize,
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        let t = keys.len() / hd;
        let n_rep = q.len() / hd;
        let scores = &mut scores[..n_rep * t];
        for (r, s) in scores.chunks_exact_mut(t).enumerate() {
            let qr = &q[r * hd..(r + 1) * hd];
            let mut max = f32::NEG_INFINITY;
            for (s, k) in s.iter_mut().zip(keys.chunks_exact(hd)) {
                *s = dot_lanes(qr, k) * scale;
                max = max.max(*s);
            }
            let mut sum = 0.0;
            for s in s.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            s.iter_mut().for_each(|s| *s *= inv);
        }
        out.fill(0.0);
        for (j, v) in values.chunks_exact(hd).enumerate() {
            for (r, o) in out.chunks_exact_mut(hd).enumerate() {
                let p = scores[r * t + j];
                for (o, &x) in o.iter_mut().zip(v) {
                    *o += p * x;
                }
            }
        }
    }
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
        attend(&q, &keys, &values, 2, 1.0, &mut scores, &mut out);
        let p1 = 2f32.exp() / (1.0 + 2f32.exp());
        assert!(
            (out[0] - (1.0 - p1)).abs() < 1e-6 && (out[1] - p1).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn grouped_query_heads_each_get_their_own_softmax() {
        let q = [1.0, 0.0, 0.0, 1.0]; // two query heads of 2 sharing the keys
        let keys = [0.0, 0.0, 2.0, 0.0];
        let values = [1.0, 0.0, 0.0, 1.0];
        let (mut scores, mut out) = ([0.0; 4], [0.0; 4]);
        attend(&q, &keys, &values, 2, 1.0, &mut scores, &mut out);
        let p1 = 2f32.exp() / (1.0 + 2f32.exp());
        assert!(
            (out[0] - (1.0 - p1)).abs() < 1e-6 && (out[1] - p1).abs() < 1e-6,
            "{out:?}"
        );
        assert!((out[2] - 0.5).abs() < 1e-6 && (out[3] - 0.5).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn silu_mul_gates_up_by_silu_of_gate() {
        let mut g = [0.0, 1.0];
        silu_mul(&mut g, &[5.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
    }
}
