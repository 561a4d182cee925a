//! Every SIMD kernel against the scalar one, and the scalar ones against dequantize-then-f32-dot
//! with `airlock_gguf::dequantize` (ggml's reference decoders) as the oracle of block layouts.

use airlock_gguf::{GgmlType, dequantize};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{BlockFormat, Isa, QMatrix};

const FORMATS: [BlockFormat; 5] = [
    BlockFormat::Q4_0,
    BlockFormat::Q4_1,
    BlockFormat::Q8_0,
    BlockFormat::Q4_K,
    BlockFormat::Q6_K,
];

fn ggml_type(format: BlockFormat) -> GgmlType {
    match format {
        BlockFormat::Q4_0 => GgmlType::Q4_0,
        BlockFormat::Q4_1 => GgmlType::Q4_1,
        BlockFormat::Q8_0 => GgmlType::Q8_0,
        BlockFormat::Q4_K => GgmlType::Q4_K,
        BlockFormat::Q6_K => GgmlType::Q6_K,
    }
}

/// Byte offsets of a block's f16 scales (d, and dmin / m where the format has one).
fn scale_offsets(format: BlockFormat) -> &'static [usize] {
    match format {
        BlockFormat::Q4_0 | BlockFormat::Q8_0 => &[0],
        BlockFormat::Q4_1 | BlockFormat::Q4_K => &[0, 2],
        BlockFormat::Q6_K => &[208],
    }
}

/// A random f16 scale: one in eight is zero, half are negative.
fn random_scale(rng: &mut StdRng) -> f16 {
    if rng.random_range(0..8) == 0 {
        return f16::ZERO;
    }
    let magnitude = rng.random_range(0.001f32..0.1);
    f16::from_f32(if rng.random() { magnitude } else { -magnitude })
}

/// `rows` rows of random blocks: random bytes (every nibble, 6-bit and 8-bit value) with finite
/// random f16 scales written over the scale fields.
fn random_matrix(rng: &mut StdRng, format: BlockFormat, rows: usize, cols: usize) -> QMatrix {
    let blocks = rows * cols / format.block_elems();
    let mut data: Vec<u8> = (0..blocks * format.block_bytes()).map(|_| rng.random()).collect();
    for block in data.chunks_exact_mut(format.block_bytes()) {
        for &at in scale_offsets(format) {
            block[at..at + 2].copy_from_slice(&random_scale(rng).to_le_bytes());
        }
    }
    QMatrix::new(format, rows, cols, data).expect("whole blocks")
}

/// Activations of mixed magnitude, with an all-zero stretch to exercise zero scales.
fn random_activations(rng: &mut StdRng, n: usize, cols: usize) -> Vec<f32> {
    (0..n * cols)
        .map(|i| {
            if i % cols < 32 && i / cols == 1 {
                0.0
            } else {
                rng.random_range(-3.0f32..3.0)
            }
        })
        .collect()
}

fn dequantized(m: &QMatrix) -> Vec<f32> {
    let mut w = vec![0.0f32; m.rows() * m.cols()];
    dequantize(ggml_type(m.format()), m.data(), &mut w).expect("valid blocks");
    w
}

/// `Σ_j |w_j| |x_j|` per output, the scale of each result's rounding error.
fn magnitudes(w: &[f32], x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let n = x.len() / cols;
    let mut out = vec![0.0f32; n * rows];
    for i in 0..n {
        for r in 0..rows {
            let (wr, xr) = (&w[r * cols..(r + 1) * cols], &x[i * cols..(i + 1) * cols]);
            out[i * rows + r] = wr.iter().zip(xr).map(|(a, b)| (a.abs() + 1e-3) * b.abs()).sum();
        }
    }
    out
}

fn shapes(format: BlockFormat) -> Vec<(usize, usize)> {
    // (rows, cols): rows never a multiple of a chunk; cols from one block to 4096.
    if format.block_elems() == 256 {
        vec![(7, 256), (37, 768), (301, 1024), (19, 4096)]
    } else {
        vec![(5, 32), (37, 96), (301, 576), (23, 1056), (19, 4096)]
    }
}

#[test]
fn simd_kernels_agree_with_scalar_for_every_format_and_tile_size() {
    let mut rng = StdRng::seed_from_u64(7);
    let isas: Vec<Isa> = Isa::ALL
        .into_iter()
        .filter(|i| *i != Isa::Scalar && i.is_available())
        .collect();
    eprintln!("SIMD paths tested on this CPU: {isas:?}");
    for format in FORMATS {
        for (rows, cols) in shapes(format) {
            let m = random_matrix(&mut rng, format, rows, cols);
            let w = dequantized(&m);
            for n in [1, 3, 17] {
                let x = random_activations(&mut rng, n, cols);
                let tol = magnitudes(&w, &x, rows, cols);
                let mut want = vec![0.0f32; n * rows];
                m.matmul_into_with(Isa::Scalar, &x, &mut want);
                for &isa in &isas {
                    let mut got = vec![f32::NAN; n * rows];
                    m.matmul_into_with(isa, &x, &mut got);
                    for (i, ((g, w), t)) in got.iter().zip(&want).zip(&tol).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * t,
                            "{isa:?} {format:?} [{rows}x{cols}] n={n} out[{i}]: {g} vs scalar {w} (scale {t})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn scalar_kernels_match_dequantized_weights_times_dequantized_activations() {
    let mut rng = StdRng::seed_from_u64(11);
    for format in FORMATS {
        for (rows, cols) in shapes(format) {
            let m = random_matrix(&mut rng, format, rows, cols);
            let w = dequantized(&m);
            let n = 3;
            let x = random_activations(&mut rng, n, cols);
            // The activations as the kernel sees them: quantized, then widened.
            let xq: Vec<f32> = if format.block_elems() == 256 {
                let mut a = vec![crate::Q8KBlock::default(); n * cols / 256];
                crate::quantize_row_q8k(&x, &mut a);
                a.iter()
                    .flat_map(|b| b.qs.iter().map(move |&q| b.d * q as f32))
                    .collect()
            } else {
                let mut a = vec![crate::Q8Block::default(); n * cols / 32];
                crate::quantize_row_q8(&x, &mut a);
                a.iter()
                    .flat_map(|b| b.qs.iter().map(move |&q| b.d * q as f32))
                    .collect()
            };
            let tol = magnitudes(&w, &xq, rows, cols);
            let mut got = vec![0.0f32; n * rows];
            m.matmul_into_with(Isa::Scalar, &x, &mut got);
            for i in 0..n {
                for r in 0..rows {
                    let want: f32 = (0..cols).map(|j| w[r * cols + j] * xq[i * cols + j]).sum();
                    let (g, t) = (got[i * rows + r], tol[i * rows + r]);
                    assert!(
                        (g - want).abs() <= 1e-3 * t,
                        "{format:?} [{rows}x{cols}] ({i},{r}): {g} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn each_output_row_is_bit_identical_whatever_the_batch_it_comes_in() {
    let mut rng = StdRng::seed_from_u64(3);
    let m = random_matrix(&mut rng, BlockFormat::Q4_1, 70, 576);
    let x = random_activations(&mut rng, 5, 576);
    let y = m.matmul(&x);
    assert_eq!(y.len(), 5 * 70);
    let mut z = vec![0.0f32; 5 * 70];
    m.matmul_into(&x, &mut z);
    assert_eq!(y, z);
    // Row i of the product depends on activation row i only, bit for bit, whichever tile it
    // lands in, so batching requests together never changes a sampled token.
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let mut all = vec![0.0f32; 5 * 70];
        m.matmul_into_with(isa, &x, &mut all);
        for i in 0..5 {
            let mut one = vec![0.0f32; 70];
            m.matmul_into_with(isa, &x[i * 576..(i + 1) * 576], &mut one);
            assert_eq!(&all[i * 70..(i + 1) * 70], &one[..], "{isa:?} row {i}");
        }
    }
}

#[test]
fn k_quant_rows_must_be_whole_super_blocks() {
    assert!(QMatrix::new(BlockFormat::Q4_K, 1, 128, vec![0; 72]).is_err());
    assert!(QMatrix::new(BlockFormat::Q6_K, 2, 256, vec![0; 420]).is_ok());
    assert_eq!(BlockFormat::from_name("Q4_K"), Some(BlockFormat::Q4_K));
    assert_eq!(BlockFormat::from_name("Q6_K"), Some(BlockFormat::Q6_K));
    assert_eq!(BlockFormat::from_name("Q5_K"), None);
}
