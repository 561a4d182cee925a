//! ggml's vectorized `expf` (`ggml_v_expf` in ggml-cpu/vec.h, adapted there from Arm's
//! optimized-routines), reproduced bit for bit, and which of ggml's builds this CPU's kernels
//! reproduce.
//!
//! llama.cpp's softmax and SiLU both go through it. It has one version per instruction set, and
//! they differ in the last bit: the AVX-512 one scales the polynomial by `2^n` with `vscalefps`,
//! the AVX2 one adds `n` to the exponent bits and folds the leading 1 into a fused multiply-add.
//! Each lane is computed on its own, so the lane functions here, applied element by element,
//! give what ggml's vectors give.

use crate::Isa;

/// The ggml build whose numerics the CPU path reproduces: the one llama.cpp compiles for this CPU
/// (`-march=native`), which sets its vector width and its `expf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ggml {
    /// AVX-512 F and DQ: 16 lanes, `vscalefps`.
    Avx512,
    /// AVX2 and FMA: 8 lanes. Also what other CPUs use here (ggml's NEON build rounds like it in
    /// `expf` but not everywhere else, so those are close, not bit-exact).
    Avx2,
}

impl Ggml {
    #[cfg_attr(not(any(target_arch = "x86_64", test)), allow(dead_code))]
    pub(crate) fn native() -> Self {
        if Isa::best() == Isa::Avx512Vnni {
            Ggml::Avx512
        } else {
            Ggml::Avx2
        }
    }
}

// The constants, as ggml writes them in hexadecimal floating point.
const SHIFT: f32 = 12_582_912.0; // 0x1.8p23: adding it rounds to an integer
const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
const LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
const C5: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
const C4: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
const C3: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
const C2: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
const C1: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1

/// `e^x` as one lane of ggml's `ggml_v_expf` for `flavor`.
#[inline(always)]
pub(crate) fn expf(flavor: Ggml, x: f32) -> f32 {
    // x = n ln 2 + b, |b| <= ln 2 / 2, then e^x = 2^n e^b with e^b a degree-5 polynomial.
    let z = x.mul_add(LOG2E, SHIFT);
    let n = z - SHIFT;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let u = b * b;
    let high = C5.mul_add(b, C4).mul_add(u, C3.mul_add(b, C2));
    match flavor {
        Ggml::Avx512 => {
            let j = high.mul_add(u, C1.mul_add(b, 1.0));
            if n.abs() > 192.0 {
                if n <= 0.0 { 0.0 } else { f32::INFINITY }
            } else {
                scalef(j, n)
            }
        }
        Ggml::Avx2 => {
            let j = high.mul_add(u, C1 * b); // e^b - 1
            let e = z.to_bits() << 23; // n in the exponent field
            let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits())); // 2^n while |n| <= 126
            if n.abs() <= 126.0 {
                return k.mul_add(j, k);
            }
            let g = if n <= 0.0 { 0x8200_0000u32 } else { 0 };
            let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
            let s2 = f32::from_bits(e.wrapping_sub(g));
            if n.abs() > 192.0 {
                s1 * s1
            } else {
                s2.mul_add(j, s2) * s1
            }
        }
    }
}

/// `j * 2^n` rounded once, as `vscalefps` does, for integral `|n| <= 192`: the first factor is
/// exact (the result stays normal), so only the second rounds.
#[inline(always)]
fn scalef(j: f32, n: f32) -> f32 {
    let n = n as i32;
    let half = n / 2;
    j * pow2(half) * pow2(n - half)
}

/// `2^e` for `-126 <= e <= 127`.
#[inline(always)]
fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_flavors_are_within_two_ulps_of_libm_and_saturate_like_ggml() {
        for flavor in [Ggml::Avx512, Ggml::Avx2] {
            for i in -2000..=2000 {
                let x = i as f32 * 0.043;
                let (got, want) = (expf(flavor, x), x.exp());
                assert!(
                    (got - want).abs() <= 2.0 * f32::EPSILON * want,
                    "{flavor:?} e^{x}: {got} vs {want}"
                );
            }
            assert_eq!(expf(flavor, 0.0), 1.0);
            assert_eq!(expf(flavor, f32::NEG_INFINITY), 0.0);
            assert_eq!(expf(flavor, -200.0), 0.0);
            assert_eq!(expf(flavor, 100.0), f32::INFINITY);
            // Underflow to subnormals rounds once.
            let tiny = expf(flavor, -100.0);
            assert!(tiny > 0.0 && tiny < f32::MIN_POSITIVE && (tiny - (-100f32).exp()).abs() <= 1e-44);
        }
    }

    #[test]
    fn the_flavors_round_differently_somewhere() {
        let differ = (0..20_000)
            .map(|i| -(i as f32) * 0.001_37)
            .filter(|&x| expf(Ggml::Avx512, x) != expf(Ggml::Avx2, x))
            .count();
        assert!(
            differ > 0,
            "the AVX-512 and AVX2 versions should not be interchangeable"
        );
    }
}
