//! 8-bit quantization of activation rows in blocks of 32, as ggml-cpu's SIMD `quantize_row_q8_0`
//! and `quantize_row_q8_1` do (ggml-cpu/arch/x86/quants.c, arch/arm/quants.c): `d = max|x| / 127`,
//! `q = round(x * id)` to nearest with ties to even (`vroundps`, `vcvtnq`; only the portable
//! `_ref` versions round ties away from zero), where `id` is `127 / max|x|` on x86-64 and `1 / d`
//! on Arm, and the block's sum `s = d * Σq` for formats with an offset (Q4_1). `d` and `s` are
//! rounded to f16, as ggml stores them. Matching these details bit for bit matters: one tie
//! rounded the other way moves a whole block's product, and the difference grows through the
//! layers to more than all the float rounding of a forward pass.
#![allow(unsafe_code)]

use half::f16;

use crate::BLOCK;

/// One quantized block of an activation row. `repr(C)`: SIMD kernels load `d` and `s` as a pair.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Q8Block {
    pub d: f32,
    /// `d * Σ qs`, used with the per-block minimum of Q4_1 weights.
    pub s: f32,
    pub qs: [i8; BLOCK],
}

/// Quantizes `x` (a multiple of 32 long) into `out` (`x.len() / 32` blocks).
pub fn quantize_row_q8(x: &[f32], out: &mut [Q8Block]) {
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::best() != crate::Isa::Scalar {
        // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2.
        unsafe { quantize_avx2(x, out) };
        return;
    }
    quantize(x, out);
}

/// The same code compiled for AVX2, where the rounding becomes `vroundps` instead of a libm call.
///
/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], out: &mut [Q8Block]) {
    quantize(x, out);
}

#[inline(always)]
fn quantize(x: &[f32], out: &mut [Q8Block]) {
    for (block, xs) in out.iter_mut().zip(x.chunks_exact(BLOCK)) {
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse_scale(amax, d);
        let mut sum = 0i32;
        for (q, &v) in block.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        block.d = round_f16(d);
        block.s = round_f16(sum as f32 * d);
    }
}

/// The factor that maps a block onto -127..=127, computed as llama.cpp computes it on this
/// architecture (the two differ in the last bit for some `amax`).
#[inline(always)]
fn inverse_scale(amax: f32, d: f32) -> f32 {
    if amax == 0.0 {
        0.0
    } else if cfg!(target_arch = "aarch64") {
        1.0 / d
    } else {
        127.0 / amax
    }
}

fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_blocks_reconstruct_the_row_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        let mut blocks = vec![Q8Block::default(); 2];
        quantize_row_q8(&x, &mut blocks);
        for (b, xs) in blocks.iter().zip(x.chunks(32)) {
            for (q, v) in b.qs.iter().zip(xs) {
                assert!((*q as f32 * b.d - v).abs() <= b.d * 0.51, "{q} * {} vs {v}", b.d);
            }
        }
    }

    #[test]
    fn zero_row_quantizes_to_zero() {
        let mut blocks = vec![Q8Block::default(); 1];
        quantize_row_q8(&[0.0; 32], &mut blocks);
        assert_eq!(blocks[0].d, 0.0);
        assert!(blocks[0].qs.iter().all(|&q| q == 0));
    }

    #[test]
    fn ties_round_to_even_as_ggml_cpu_does() {
        // amax 127 makes `127 / amax` exactly 1, so x * id is x: 2.5 -> 2, 3.5 -> 4, -0.5 -> 0.
        let mut x = [0.0f32; 32];
        x[..5].copy_from_slice(&[127.0, 2.5, 3.5, -0.5, -1.5]);
        let mut blocks = vec![Q8Block::default(); 1];
        quantize_row_q8(&x, &mut blocks);
        assert_eq!(blocks[0].qs[..5], [127, 2, 4, 0, -2]);
        assert_eq!(blocks[0].s, round_f16(131.0));
    }

    #[test]
    fn simd_build_rounds_exactly_like_the_scalar_one_including_ties() {
        // Halves and values a hair below them, where a sloppy `floor(x + 0.5)` would differ.
        let mut x: Vec<f32> = (0..256).map(|i| (i as f32 - 128.0) * 0.5).collect();
        x.extend((0..256).map(|i| (i as f32 - 128.0) * 0.5 - 0.5f32.powi(20) * (i % 3) as f32));
        x.extend((0..512).map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 0.0137));
        let (mut a, mut b) = (vec![Q8Block::default(); 32], vec![Q8Block::default(); 32]);
        quantize(&x, &mut a);
        quantize_row_q8(&x, &mut b);
        for (a, b) in a.iter().zip(&b) {
            assert_eq!((a.d, a.s, a.qs), (b.d, b.s, b.qs));
        }
    }
}
