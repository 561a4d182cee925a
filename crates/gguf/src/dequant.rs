//! Block dequantization, element for element as ggml's reference decoders
//! (`dequantize_row_*` in ggml-quants.c; block layouts from the `block_*` structs in
//! ggml-common.h). Written from those definitions, checked bit-exactly against gguf-py's
//! `gguf.quants` in `tests/dequant_golden.rs`.

use crate::types::QK_K;
use crate::{GgmlType, GgufError};

/// Decodes `data`, whole blocks of `ty`, into `out`. `out.len()` must be a multiple of the block
/// size and `data.len()` exactly the bytes of that many elements.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), GgufError> {
    let expected = ty.row_bytes(out.len())?;
    if data.len() != expected {
        return Err(GgufError::LengthMismatch {
            what: format!("bytes of {} {} elements", out.len(), ty.name()),
            expected,
            actual: data.len(),
        });
    }
    let decode: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, y| y[0] = f16(b, 0),
        GgmlType::BF16 => |b, y| y[0] = bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        GgmlType::Q4_0 => q4_0,
        GgmlType::Q4_1 => q4_1,
        GgmlType::Q5_0 => q5_0,
        GgmlType::Q5_1 => q5_1,
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q2_K => q2_k,
        GgmlType::Q3_K => q3_k,
        GgmlType::Q4_K => q4_k,
        GgmlType::Q5_K => q5_k,
        GgmlType::Q6_K => q6_k,
        GgmlType::Q8_K => q8_k,
    };
    let blocks = data.chunks_exact(ty.type_size());
    for (block, y) in blocks.zip(out.chunks_exact_mut(ty.block_size())) {
        decode(block, y);
    }
    Ok(())
}

/// The little-endian IEEE half at `b[at..at + 2]`, widened.
fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// bfloat16 is the top half of an f32.
pub(crate) fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `block_q4_0 { half d; u8 qs[16] }`: y = (q - 8) * d, low nibbles first.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let qs = &b[2..18];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = (i32::from(q & 0xF) - 8) as f32 * d;
        y[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

/// `block_q4_1 { half d; half m; u8 qs[16] }`: y = q * d + m.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qs = &b[4..20];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = f32::from(q & 0xF) * d + m;
        y[j + 16] = f32::from(q >> 4) * d + m;
    }
}

/// The 5-bit values of a Q5 block: low nibbles from `qs`, fifth bits from the 32-bit mask `qh`.
fn q5_values(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for (j, &byte) in qs.iter().enumerate() {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        q[j] = (byte & 0xF) | (hi0 << 4);
        q[j + 16] = (byte >> 4) | (hi1 << 4);
    }
    q
}

/// `block_q5_0 { half d; u8 qh[4]; u8 qs[16] }`: y = (q - 16) * d.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (y, q) in y.iter_mut().zip(q5_values(qh, &b[6..22])) {
        *y = (i32::from(q) - 16) as f32 * d;
    }
}

/// `block_q5_1 { half d; half m; u8 qh[4]; u8 qs[16] }`: y = q * d + m.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (y, q) in y.iter_mut().zip(q5_values(qh, &b[8..24])) {
        *y = f32::from(q) * d + m;
    }
}

/// `block_q8_0 { half d; i8 qs[32] }`: y = q * d.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = f32::from(q as i8) * d;
    }
}

/// `block_q2_K { u8 scales[16]; u8 qs[64]; half d; half dmin }`: 16 sub-blocks of 16; each scale
/// byte holds a 4-bit scale (low) and 4-bit min (high); y = d * sc * q - dmin * m with 2-bit q.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16(b, 80), f16(b, 82));
    let mut sub = 0; // index of the 16-element sub-block, which is also its scale byte
    for q in qs.chunks_exact(32) {
        for shift in [0, 2, 4, 6] {
            for half in q.chunks_exact(16) {
                let sc = scales[sub];
                let dl = d * f32::from(sc & 0xF);
                let ml = dmin * f32::from(sc >> 4);
                for (l, &byte) in half.iter().enumerate() {
                    y[sub * 16 + l] = dl * f32::from((byte >> shift) & 3) - ml;
                }
                sub += 1;
            }
        }
    }
}

/// The sixteen signed 6-bit scales of a Q3_K block, unpacked from 12 bytes: the low four bits of
/// scale i are nibble `i / 8` of byte `i % 8`, the high two bits are bit pair `i / 4` of byte
/// `8 + i % 4`; the stored value is offset by 32.
fn q3_k_scales(packed: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (i, s) in out.iter_mut().enumerate() {
        let low = if i < 8 { packed[i] & 0xF } else { packed[i - 8] >> 4 };
        let high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = i32::from(low | (high << 4)) - 32;
    }
    out
}

/// `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d }`: 3-bit q = 2 low bits from qs
/// and a high bit from hmask, where a *clear* high bit subtracts 4; y = d * sc * q.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let scales = q3_k_scales(&b[96..108]);
    let d = f16(b, 108);
    let mut sub = 0;
    let mut mask = 1u8;
    for q in qs.chunks_exact(32) {
        for shift in [0, 2, 4, 6] {
            for (part, half) in q.chunks_exact(16).enumerate() {
                let dl = d * scales[sub] as f32;
                for (l, &byte) in half.iter().enumerate() {
                    let low = i32::from((byte >> shift) & 3);
                    let minus = if hmask[part * 16 + l] & mask != 0 { 0 } else { 4 };
                    y[sub * 16 + l] = dl * (low - minus) as f32;
                }
                sub += 1;
            }
            mask <<= 1;
        }
    }
}

/// Scale and min of sub-block `j` (of 8) from the 12 packed bytes shared by Q4_K and Q5_K
/// (`get_scale_min_k4` in ggml): 6 bits each, the first four in bytes 0..8 directly, the last four
/// split between a nibble of bytes 8..12 and the top two bits of bytes 0..8.
fn k4_scale_min(j: usize, q: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (f32::from(sc), f32::from(m))
}

/// `block_q4_K { half d; half dmin; u8 scales[12]; u8 qs[128] }`: 8 sub-blocks of 32; each group
/// of 32 bytes holds two sub-blocks (low nibbles, then high); y = d * sc * q - dmin * m.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    for (chunk, q) in b[16..144].chunks_exact(32).enumerate() {
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let (d1, min1, d2, min2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
        let y = &mut y[chunk * 64..chunk * 64 + 64];
        for (l, &byte) in q.iter().enumerate() {
            y[l] = d1 * f32::from(byte & 0xF) - min1;
            y[l + 32] = d2 * f32::from(byte >> 4) - min2;
        }
    }
}

/// `block_q5_K { half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }`: as Q4_K with a fifth
/// bit per value from qh (bit `2 * chunk` for the low nibbles, `2 * chunk + 1` for the high).
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    for (chunk, q) in b[48..176].chunks_exact(32).enumerate() {
        let (sc1, m1) = k4_scale_min(2 * chunk, scales);
        let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
        let (d1, min1, d2, min2) = (d * sc1, dmin * m1, d * sc2, dmin * m2);
        let (u1, u2) = (1u8 << (2 * chunk), 1u8 << (2 * chunk + 1));
        let y = &mut y[chunk * 64..chunk * 64 + 64];
        for (l, &byte) in q.iter().enumerate() {
            let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * f32::from((byte & 0xF) + hi1) - min1;
            y[l + 32] = d2 * f32::from((byte >> 4) + hi2) - min2;
        }
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d }`: 6-bit q = 4 bits from ql and
/// 2 from qh, offset by 32; 16 sub-blocks of 16 with signed 8-bit scales; y = d * sc * q.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        let scale = |i: usize| d * f32::from(sc[i] as i8);
        for l in 0..32 {
            let is = l / 16;
            let q1 = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            let q2 = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            let q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            let q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            y[l] = scale(is) * (i32::from(q1) - 32) as f32;
            y[l + 32] = scale(is + 2) * (i32::from(q2) - 32) as f32;
            y[l + 64] = scale(is + 4) * (i32::from(q3) - 32) as f32;
            y[l + 96] = scale(is + 6) * (i32::from(q4) - 32) as f32;
        }
    }
}

/// `block_q8_K { float d; i8 qs[256]; i16 bsums[16] }`: y = d * q (bsums only speed up dots).
fn q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (y, &q) in y.iter_mut().zip(&b[4..4 + QK_K]) {
        *y = d * f32::from(q as i8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_are_errors_not_panics() {
        let mut out = [0.0f32; 32];
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], &mut out).is_err());
        let mut odd = [0.0f32; 31];
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 34], &mut odd).is_err());
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 34], &mut out).is_ok());
    }

    #[test]
    fn q8_0_block_scales_signed_bytes() {
        let mut block = vec![0u8; 34];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[2] = 4;
        block[3] = (-6i8) as u8;
        let mut out = [0.0f32; 32];
        dequantize(GgmlType::Q8_0, &block, &mut out).expect("valid block");
        assert_eq!(&out[..3], &[2.0, -3.0, 0.0]);
    }
}
