//! The small per-row loops of a Llama block on host f32 buffers: RMSNorm (Zhang & Sennrich,
//! 2019), RoPE in GGUF's adjacent-pair layout (Su et al., 2021), SiLU gating (Shazeer, 2020) and
//! one head's causal attention over a cache (softmax of scaled dot products, then the weighted sum
//! of values), as ggml-cpu's `ggml_compute_forward_{rms_norm,rope,swiglu,soft_max}` do.
//!
//! They exist because a decode step does little arithmetic per op: run as separate tensor ops,
//! each would pay an allocation and a dispatch for a few hundred floats, which costs more than the
//! arithmetic. Plain Rust with fixed-width lane accumulators, compiled for the baseline target
//! (NEON on AArch64) and, on x86-64, again with AVX2 (or AVX-512), picked at run time like the
//! matmul kernels.
//!
//! Each rounds as llama.cpp's CPU build for this machine does, to the last bit: RMSNorm sums its
//! squares in f64, RoPE fuses the multiply-adds GCC fuses in ggml, SiLU and softmax use ggml's own
//! `expf` ([`expf`]), and attention can reproduce llama.cpp's f16 KV cache ([`attention`]).
//! Why the last bit: the 8-bit quantization of the next matmul's input turns a last-bit
//! difference into a whole quantum now and then, and 30 layers grow those into logits ~0.2 apart.

#![allow(unsafe_code)]

mod attention;
mod expf;

pub use attention::{AttnPrecision, attend};

use crate::BlockFormat;
#[cfg(target_arch = "x86_64")]
use crate::Isa;
use expf::{Ggml, expf};

/// Defines `pub fn $name` that runs `$body` compiled with AVX2 and FMA where the CPU has them.
///
/// Rust never fuses a multiply and an add on its own, so the arithmetic is exactly what the body
/// writes: `mul_add` where ggml's compiled code has a fused multiply-add, `*` and `+` elsewhere.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if Isa::best() != Isa::Scalar {
                    // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2
                    // and FMA, and `Isa::best` only returns one this CPU has.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Lanes of the exact attention's accumulators: two AVX2 registers, so sums are independent
/// chains.
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
    /// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gain` for each row `r` of `gain.len()` values,
    /// as ggml's `rms_norm` and `mul` round it: the squares (f32) summed in order in f64.
    pub fn rms_norm(x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) {
        let dim = gain.len();
        for (row, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
            let mean = (sum / dim as f64) as f32;
            let scale = 1.0 / (mean + eps).sqrt();
            for ((o, &v), &g) in out.iter_mut().zip(row).zip(gain) {
                *o = v * scale * g;
            }
        }
    }
}

multiversion! {
    /// Rotates every head of one position in place: `x` is `[heads, head_dim]`, `cos` and `sin`
    /// are that position's `[head_dim / 2]` angles; pair `(x[2i], x[2i+1])` turns by angle `i`.
    /// The products are fused as GCC fuses them in ggml's `rope` (`x0 * cos` into each).
    pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = cos.len();
        for head in x.chunks_exact_mut(2 * half) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (e, o) = (pair[0], pair[1]);
                pair[0] = e.mul_add(c, -(o * s));
                pair[1] = e.mul_add(s, o * c);
            }
        }
    }
}

/// SwiGLU's gate: `gate[i] = silu(gate[i]) * up[i]`, with `silu(x) = x / (1 + e^-x)`, as ggml's
/// `swiglu` computes it: a vector of lanes at a time with ggml's `expf`, any rest with libm's.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if Ggml::native() == Ggml::Avx512 {
            // SAFETY: `Ggml::Avx512` is native only where `Isa::Avx512Vnni` is available, and that
            // includes AVX-512 F/DQ, AVX2 and FMA.
            unsafe { x86::silu_mul_avx512(gate, up) };
            return;
        }
        if Isa::best() != Isa::Scalar {
            // SAFETY: every non-scalar x86-64 instruction set includes AVX2 and FMA.
            unsafe { x86::silu_mul_avx2(gate, up) };
            return;
        }
    }
    silu_mul_lanes::<8>(Ggml::Avx2, gate, up);
}

#[inline(always)]
fn silu_mul_lanes<const W: usize>(flavor: Ggml, gate: &mut [f32], up: &[f32]) {
    let mut gates = gate.chunks_exact_mut(W);
    let mut ups = up.chunks_exact(W);
    for (g, u) in (&mut gates).zip(&mut ups) {
        for (g, &u) in g.iter_mut().zip(u) {
            *g = *g / (1.0 + expf(flavor, 0.0 - *g)) * u;
        }
    }
    for (g, &u) in gates.into_remainder().iter_mut().zip(ups.remainder()) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

multiversion! {
    /// The gradients of [`silu_mul`]'s `h = silu(g) * u` given `dh`, for training, in place: with
    /// `s = sigmoid(g)`, `dg = dh * u * s * (1 + g * (1 - s))` replaces `g` in `gate`, and
    /// `du = dh * silu(g)` replaces `dh` in `d_out` (no buffers to allocate and zero).
    pub fn silu_mul_backward(gate: &mut [f32], up: &[f32], d_out: &mut [f32]) {
        let n = gate.len();
        assert!(up.len() == n && d_out.len() == n);
        // Eight at a time, so that the compiler turns `expf`'s branches into vector selects.
        let (g, u, dh) = (gate.as_chunks_mut::<8>().0, up.as_chunks::<8>().0, d_out.as_chunks_mut::<8>().0);
        for c in 0..g.len() {
            for i in 0..8 {
                (g[c][i], dh[c][i]) = silu_mul_grad(g[c][i], u[c][i], dh[c][i]);
            }
        }
        for i in n / 8 * 8..n {
            (gate[i], d_out[i]) = silu_mul_grad(gate[i], up[i], d_out[i]);
        }
    }
}

#[inline(always)]
fn silu_mul_grad(g: f32, u: f32, dh: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + expf(Ggml::Avx2, -g));
    (dh * u * s * (1.0 + g * (1.0 - s)), dh * g * s)
}

multiversion! {
    /// Whole blocks of `format` to f32, each value as gguf's reference decoders compute it;
    /// `false`, writing nothing, for formats other than Q4_1 and Q8_0. Why by hand: the trainer
    /// unpacks every base weight twice per sequence, and gguf's decoders go block by block through
    /// a function pointer, widening each scale in a call of its own.
    pub fn dequantize(format: BlockFormat, blocks: &[u8], dst: &mut [f32]) -> bool {
        let widen = |bits: u16| half::f16::from_bits(bits).to_f32();
        match format {
            BlockFormat::Q4_1 => unpack_q4_1(blocks, dst, widen, |v| v),
            BlockFormat::Q8_0 => unpack_q8_0(blocks, dst, widen, |v| v),
            _ => return false,
        }
        true
    }
}

/// `block_q4_1 { half d; half m; u8 qs[16] }` blocks: values `q * d + m`, low nibbles first,
/// each passed through `out`; `half` widens the f16 scales. Panics unless `blocks` are whole
/// blocks of `dst.len()` values.
#[inline(always)]
pub(crate) fn unpack_q4_1<T>(blocks: &[u8], dst: &mut [T], half: impl Fn(u16) -> f32, out: impl Fn(f32) -> T) {
    assert_whole_blocks(blocks, 20, dst.len());
    for (b, y) in blocks.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (
            half(u16::from_le_bytes([b[0], b[1]])),
            half(u16::from_le_bytes([b[2], b[3]])),
        );
        let (lo, hi) = y.split_at_mut(16);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b[4..20]) {
            *lo = out(f32::from(q & 0xF) * d + m);
            *hi = out(f32::from(q >> 4) * d + m);
        }
    }
}

/// Panics unless `blocks` are whole blocks of `block_bytes` bytes holding `values` values.
fn assert_whole_blocks(blocks: &[u8], block_bytes: usize, values: usize) {
    let whole = blocks.len().is_multiple_of(block_bytes) && blocks.len() / block_bytes * 32 == values;
    assert!(
        whole,
        "{} bytes are not whole {block_bytes}-byte blocks of {values} values",
        blocks.len()
    );
}

/// `block_q8_0 { half d; i8 qs[32] }` blocks: values `q * d`, as [`unpack_q4_1`].
#[inline(always)]
pub(crate) fn unpack_q8_0<T>(blocks: &[u8], dst: &mut [T], half: impl Fn(u16) -> f32, out: impl Fn(f32) -> T) {
    assert_whole_blocks(blocks, 34, dst.len());
    for (b, y) in blocks.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = half(u16::from_le_bytes([b[0], b[1]]));
        for (y, &q) in y.iter_mut().zip(&b[2..34]) {
            *y = out(f32::from(q as i8) * d);
        }
    }
}

/// Rounds every value to the nearest f16 (ties to even) and back, in place: what storing it in
/// an f16 tensor does, as llama.cpp's KV cache and the f16 operands of its attention products do.
pub fn round_to_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() != Isa::Scalar {
        // SAFETY: on x86-64 every available non-scalar instruction set includes F16C.
        unsafe { x86::round_to_f16(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32());
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Ggml, silu_mul_lanes};

    /// # Safety
    /// AVX-512 F and DQ, AVX2 and FMA must be available.
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    pub(super) unsafe fn silu_mul_avx512(gate: &mut [f32], up: &[f32]) {
        silu_mul_lanes::<16>(Ggml::Avx512, gate, up);
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
        silu_mul_lanes::<8>(Ggml::Avx2, gate, up);
    }

    /// [`super::round_to_f16`] with F16C, eight values at a time.
    ///
    /// # Safety
    /// F16C must be available.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn round_to_f16(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` is 8 floats; the loads and stores are unaligned.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for v in chunks.into_remainder() {
            let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(*v));
            *v = _mm_cvtss_f32(_mm_cvtph_ps(h));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use airlock_gguf::GgmlType;

    #[test]
    fn rms_norm_scales_each_row_to_unit_root_mean_square() {
        let x = [3.0, 4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 8];
        rms_norm(&x, &[1.0, 1.0, 2.0, 1.0], 0.0, &mut out);
        assert_eq!(&out[..2], &[1.2, 1.6]);
        assert_eq!(&out[4..], &[1.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn dequantized_blocks_equal_gguf_decoders() {
        let values: Vec<f32> = (0..32 * 9).map(|i| ((i * 37 % 101) as f32 - 60.0) / 17.0).collect();
        for (ty, format) in [(GgmlType::Q4_1, BlockFormat::Q4_1), (GgmlType::Q8_0, BlockFormat::Q8_0)] {
            let blocks = airlock_gguf::quantize(ty, &values).expect("quantizes");
            let mut want = vec![0.0; values.len()];
            airlock_gguf::dequantize(ty, &blocks, &mut want).expect("dequantizes");
            let mut got = vec![f32::NAN; values.len()];
            assert!(dequantize(format, &blocks, &mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{ty:?}");
        }
        assert!(!dequantize(BlockFormat::Q6_K, &[], &mut []), "no kernel for Q6_K here");
    }

    #[test]
    fn silu_mul_backward_is_the_derivative_of_silu_mul() {
        // Central differences in f64 of h = g / (1 + e^-g) * u, against the closed form.
        let h = |g: f64, u: f64| g / (1.0 + (-g).exp()) * u;
        let gate: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.4).collect(); // -7.2..7.2
        let up: Vec<f32> = gate.iter().map(|g| 0.5 - g * 0.3).collect();
        let d_out: Vec<f32> = gate.iter().map(|g| 1.0 + g * 0.1).collect();
        let (mut d_gate, mut d_up) = (gate.clone(), d_out.clone());
        silu_mul_backward(&mut d_gate, &up, &mut d_up);
        let eps = 1e-4;
        for i in 0..37 {
            let (g, u, dh) = (f64::from(gate[i]), f64::from(up[i]), f64::from(d_out[i]));
            let want_g = dh * (h(g + eps, u) - h(g - eps, u)) / (2.0 * eps);
            let want_u = dh * (h(g, u + eps) - h(g, u - eps)) / (2.0 * eps);
            assert!(
                (f64::from(d_gate[i]) - want_g).abs() < 1e-4 * (1.0 + want_g.abs()),
                "dg at {g}"
            );
            assert!(
                (f64::from(d_up[i]) - want_u).abs() < 1e-4 * (1.0 + want_u.abs()),
                "du at {g}"
            );
        }
    }

    #[test]
    fn rope_rotates_adjacent_pairs_of_every_head() {
        let mut x = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]; // two heads of 4
        let (c, s) = (0.6f32, 0.8f32);
        rope(&mut x, &[c, 1.0], &[s, 0.0]);
        assert_eq!(x, [0.6, 0.8, 0.0, 1.0, 0.6, 0.8, 0.0, 1.0]);
    }

    #[test]
    fn rounding_to_f16_is_to_nearest_even_like_half_on_every_path() {
        // Every f16 ulp is 2^-10 here: 1 + 2^-11 is a tie (to 1.0), 1 + 3 * 2^-11 is one (up).
        let mut x: Vec<f32> = vec![
            1.0 + 2f32.powi(-11),
            1.0 + 3.0 * 2f32.powi(-11),
            1e-3,
            -7.123_456,
            70_000.0,
        ];
        x.extend((0..37).map(|i| (i as f32 * 0.377).sin() * 10.0));
        let want: Vec<f32> = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        round_to_f16(&mut x);
        assert_eq!(x, want);
        assert_eq!(&x[..2], &[1.0, 1.0 + 2.0 * 2f32.powi(-10)]);
    }

    #[test]
    fn silu_mul_gates_up_by_silu_of_gate() {
        let mut g = [0.0, 1.0];
        silu_mul(&mut g, &[5.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn silu_mul_is_the_portable_loop_for_this_cpus_ggml_build_with_a_libm_tail() {
        // 16 + 16 + 5: whole vectors on either build, then a tail.
        let gate: Vec<f32> = (0..37).map(|i| (i as f32 * 0.731).sin() * 9.0).collect();
        let up: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos()).collect();
        let (mut fast, mut slow) = (gate.clone(), gate.clone());
        silu_mul(&mut fast, &up);
        match Ggml::native() {
            Ggml::Avx512 => silu_mul_lanes::<16>(Ggml::Avx512, &mut slow, &up),
            Ggml::Avx2 => silu_mul_lanes::<8>(Ggml::Avx2, &mut slow, &up),
        }
        assert_eq!(fast, slow);
        for ((&f, &g), &u) in fast.iter().zip(&gate).zip(&up) {
            let exact = g / (1.0 + (-g).exp()) * u;
            assert!(
                (f - exact).abs() <= 4.0 * f32::EPSILON * exact.abs().max(1e-30),
                "{f} vs {exact}"
            );
        }
    }

    #[test]
    fn rope_fuses_the_cosine_product_into_each_output() {
        // Values whose unfused products round differently from the fused ones, in both outputs.
        let (e, o, c, s) = (1.234_567_8f32, 0.333_333_34f32, 0.28f32, 0.96f32);
        let mut x = [e, o];
        rope(&mut x, &[c], &[s]);
        assert_eq!(x, [e.mul_add(c, -(o * s)), e.mul_add(s, o * c)]);
        assert_ne!(x[0], e * c - o * s);
        assert_ne!(x[1], e * s + o * c);
    }
}
