//! Reference quantizers, value for value as ggml's `quantize_row_*_ref` (ggml-quants.c) and
//! gguf-py's `gguf.quants`: round-to-nearest with one scale (and min) per block, no importance
//! matrix. Used to build test models and to store trained weights; K-quants are not produced.

use crate::{GgmlType, GgufError};

/// Encodes `data` as whole blocks of `ty`. `data.len()` must be a multiple of the block size.
pub fn quantize(ty: GgmlType, data: &[f32]) -> Result<Vec<u8>, GgufError> {
    let n_bytes = ty.row_bytes(data.len())?;
    let mut out = Vec::with_capacity(n_bytes);
    match ty {
        GgmlType::F32 => data.iter().for_each(|x| out.extend(x.to_le_bytes())),
        GgmlType::F16 => data
            .iter()
            .for_each(|&x| out.extend(half::f16::from_f32(x).to_le_bytes())),
        GgmlType::BF16 => data.iter().for_each(|&x| out.extend(f32_to_bf16(x).to_le_bytes())),
        GgmlType::Q4_0 => data.chunks_exact(32).for_each(|x| q4_0(x, &mut out)),
        GgmlType::Q4_1 => data.chunks_exact(32).for_each(|x| q4_1(x, &mut out)),
        GgmlType::Q5_0 => data.chunks_exact(32).for_each(|x| q5_0(x, &mut out)),
        GgmlType::Q5_1 => data.chunks_exact(32).for_each(|x| q5_1(x, &mut out)),
        GgmlType::Q8_0 => data.chunks_exact(32).for_each(|x| q8_0(x, &mut out)),
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::Q8_K => {
            return Err(GgufError::QuantizeUnsupported { ty: ty.name() });
        }
    }
    debug_assert_eq!(out.len(), n_bytes);
    Ok(out)
}

/// f32 to bfloat16 with round-to-nearest-even and quiet NaNs (`ggml_compute_fp32_to_bf16`).
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    let rounded = u64::from(bits) + 0x7fff + u64::from((bits >> 16) & 1);
    (rounded >> 16) as u16
}

fn push_f16(out: &mut Vec<u8>, x: f32) {
    out.extend(half::f16::from_f32(x).to_le_bytes());
}

/// 1/d, or 0 for an all-zero block.
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// The element of largest magnitude, keeping its sign (the first one on ties).
fn signed_absmax(x: &[f32]) -> f32 {
    let mut best = 0.0f32;
    for &v in x {
        if best.abs() < v.abs() {
            best = v;
        }
    }
    best
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Truncates toward zero and clamps to `0..=top`, as ggml's `MIN(top, (int8_t)(v))` on values that
/// are never negative.
fn level(v: f32, top: u8) -> u8 {
    (v as u8).min(top)
}

/// Packs 32 levels as ggml does: element j in the low nibble of byte j, element j + 16 in the high.
fn push_nibbles(out: &mut Vec<u8>, q: &[u8; 32]) {
    out.extend((0..16).map(|j| (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)));
}

/// The fifth bits of 32 five-bit levels as a little-endian u32 (bit j from element j).
fn push_high_bits(out: &mut Vec<u8>, q: &[u8; 32]) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |acc, (j, &v)| acc | (u32::from(v >> 4) << j));
    out.extend(qh.to_le_bytes());
}

/// Symmetric 4-bit: d = max / -8 (max is the signed extreme), q = x / d + 8.5 truncated.
fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    let q: [u8; 32] = std::array::from_fn(|j| level(x[j] * id + 8.5, 15));
    push_f16(out, d);
    push_nibbles(out, &q);
}

/// Asymmetric 4-bit: d = (max - min) / 15, m = min, q = (x - min) / d + 0.5 truncated.
fn q4_1(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let q: [u8; 32] = std::array::from_fn(|j| level((x[j] - min) * id + 0.5, 15));
    push_f16(out, d);
    push_f16(out, min);
    push_nibbles(out, &q);
}

/// Symmetric 5-bit: d = max / -16, q = x / d + 16.5 truncated.
fn q5_0(x: &[f32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let q: [u8; 32] = std::array::from_fn(|j| level(x[j] * id + 16.5, 31));
    push_f16(out, d);
    push_high_bits(out, &q);
    push_nibbles(out, &q);
}

/// Asymmetric 5-bit: d = (max - min) / 31, m = min.
fn q5_1(x: &[f32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let q: [u8; 32] = std::array::from_fn(|j| level((x[j] - min) * id + 0.5, 31));
    push_f16(out, d);
    push_f16(out, min);
    push_high_bits(out, &q);
    push_nibbles(out, &q);
}

/// Symmetric 8-bit: d = amax / 127, q = round-half-away(x / d).
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    push_f16(out, d);
    out.extend(x.iter().map(|&v| ((v * id).round() as i8) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_keeps_nan_quiet() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is exactly halfway between two bf16 values; ties go to the even one.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)) & 0x7fc0, 0x7fc0);
    }

    #[test]
    fn zero_block_quantizes_to_zero_scale() {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let bytes = quantize(ty, &[0.0; 32]).expect("32 elements");
            let mut back = [1.0f32; 32];
            crate::dequantize(ty, &bytes, &mut back).expect("valid");
            assert!(back.iter().all(|&v| v == 0.0), "{ty}");
        }
    }

    #[test]
    fn k_quants_are_not_produced() {
        assert!(quantize(GgmlType::Q4_K, &[0.0; 256]).is_err());
        assert!(quantize(GgmlType::Q8_0, &[0.0; 31]).is_err());
    }
}
