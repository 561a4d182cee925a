//! Portable dot products of Q4_0 / Q4_1 / Q8_0 weight rows with Q8 activation rows (ggml's
//! generic `ggml_vec_dot_q4_0_q8_0`, `..._q4_1_q8_1`, `..._q8_0_q8_0` in ggml-cpu/quants.c),
//! written so that the compiler vectorizes the 32-wide integer inner loops.

use half::f16;

use super::per_row;
use crate::{BLOCK, Q8Block};

pub(super) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// The integer product of 32 weights with 32 activations.
#[inline]
fn int_dot(w: &[i8; BLOCK], a: &[i8; BLOCK]) -> i32 {
    w.iter().zip(a).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Unpacks a 16-byte nibble array: low nibbles are elements 0..16, high nibbles 16..32.
#[inline]
fn nibbles(qs: &[u8], offset: i8) -> [i8; BLOCK] {
    let mut out = [0i8; BLOCK];
    for (i, &b) in qs[..16].iter().enumerate() {
        out[i] = (b & 0x0f) as i8 - offset;
        out[i + 16] = (b >> 4) as i8 - offset;
    }
    out
}

/// Q4_0: 18 bytes = f16 scale + 16 bytes of nibbles; weight = d * (q - 8).
fn q4_0_row(row: &[u8], act: &[Q8Block]) -> f32 {
    row.chunks_exact(18)
        .zip(act)
        .map(|(b, a)| f16_at(b, 0) * a.d * int_dot(&nibbles(&b[2..], 8), &a.qs) as f32)
        .sum()
}

/// Q4_1: 20 bytes = f16 scale, f16 minimum, 16 bytes of nibbles; weight = d * q + m.
fn q4_1_row(row: &[u8], act: &[Q8Block]) -> f32 {
    row.chunks_exact(20)
        .zip(act)
        .map(|(b, a)| f16_at(b, 0) * a.d * int_dot(&nibbles(&b[4..], 0), &a.qs) as f32 + f16_at(b, 2) * a.s)
        .sum()
}

/// Q8_0: 34 bytes = f16 scale + 32 signed bytes; weight = d * q.
fn q8_0_row(row: &[u8], act: &[Q8Block]) -> f32 {
    row.chunks_exact(34)
        .zip(act)
        .map(|(b, a)| {
            let w: [i8; BLOCK] = std::array::from_fn(|i| b[2 + i] as i8);
            f16_at(b, 0) * a.d * int_dot(&w, &a.qs) as f32
        })
        .sum()
}

pub(super) fn q4_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    per_row(act, blocks, |a| q4_0_row(w, a))
}

pub(super) fn q4_1(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    per_row(act, blocks, |a| q4_1_row(w, a))
}

pub(super) fn q8_0(w: &[u8], act: &[Q8Block], blocks: usize) -> [f32; 4] {
    per_row(act, blocks, |a| q8_0_row(w, a))
}
