//! 8-bit quantization of activation rows in super-blocks of 256 for K-quant weights (llama.cpp's
//! `quantize_row_q8_K_ref`, ggml-quants.c): the element of largest magnitude maps to -127,
//! `q = nearest(x / d)` with ties to even, and the sums of each 16 quants (`bsums`) let K-quant
//! minimums and offsets fold into one integer product per sub-block.
#![allow(unsafe_code)]

/// Elements per K-quant super-block (`QK_K` in ggml).
pub const QK_K: usize = 256;

/// One quantized super-block of an activation row (`block_q8_K`).
#[derive(Debug, Clone, Copy)]
pub struct Q8KBlock {
    pub d: f32,
    pub qs: [i8; QK_K],
    /// Σ of each 16 consecutive `qs`.
    pub bsums: [i16; QK_K / 16],
}

impl Default for Q8KBlock {
    fn default() -> Self {
        Self {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; QK_K / 16],
        }
    }
}

/// Quantizes `x` (a multiple of 256 long) into `out` (`x.len() / 256` blocks).
pub fn quantize_row_q8k(x: &[f32], out: &mut [Q8KBlock]) {
    #[cfg(target_arch = "x86_64")]
    if crate::Isa::best() != crate::Isa::Scalar {
        // SAFETY: on x86-64 every available non-scalar instruction set includes AVX2.
        unsafe { quantize_avx2(x, out) };
        return;
    }
    quantize(x, out);
}

/// The same code compiled for AVX2, where rounding becomes `vroundps` instead of a libm call.
///
/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], out: &mut [Q8KBlock]) {
    quantize(x, out);
}

#[inline(always)]
fn quantize(x: &[f32], out: &mut [Q8KBlock]) {
    for (block, xs) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *block = Q8KBlock::default();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in block.qs.iter_mut().zip(xs) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
        }
        for (s, qs) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *s = qs.iter().map(|&q| i16::from(q)).sum();
        }
        block.d = 1.0 / iscale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8k_blocks_reconstruct_the_row_and_sum_their_quants() {
        let x: Vec<f32> = (0..512).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        let mut blocks = vec![Q8KBlock::default(); 2];
        quantize_row_q8k(&x, &mut blocks);
        for (b, xs) in blocks.iter().zip(x.chunks(QK_K)) {
            for (q, v) in b.qs.iter().zip(xs) {
                assert!((*q as f32 * b.d - v).abs() <= b.d.abs() * 0.51, "{q} * {} vs {v}", b.d);
            }
            for (s, qs) in b.bsums.iter().zip(b.qs.chunks(16)) {
                assert_eq!(*s as i32, qs.iter().map(|&q| q as i32).sum::<i32>());
            }
        }
    }
}
