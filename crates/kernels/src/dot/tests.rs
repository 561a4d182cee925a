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

/// ggml's x86 `ggml_vec_dot_q4_1_q8_1` (arch/x86/quants.c, AVX2 code) written out: per block,
/// eight 4-product integer sums scaled by `d * a.d` into eight lanes with fused multiply-adds,
/// the lanes added as `hsum_float_8` adds them, then `m * s` fused into one sum in order.
fn ggml_x86_q4_1_row(row: &[u8], act: &[crate::Q8Block]) -> f32 {
    let f16_at = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
    let (mut lanes, mut mins) = ([0.0f32; 8], 0.0f32);
    for (b, a) in row.chunks_exact(20).zip(act) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let q: Vec<i32> = (0..32)
            .map(|j| i32::from(if j < 16 { b[4 + j] & 0xf } else { b[4 + j - 16] >> 4 }))
            .collect();
        for (l, lane) in lanes.iter_mut().enumerate() {
            let sum: i32 = (4 * l..4 * l + 4).map(|j| q[j] * i32::from(a.qs[j])).sum();
            *lane = (d * a.d).mul_add(sum as f32, *lane);
        }
        mins = m.mul_add(a.s, mins);
    }
    let t: Vec<f32> = (0..4).map(|i| lanes[i] + lanes[i + 4]).collect();
    (t[0] + t[2]) + (t[1] + t[3]) + mins
}

#[test]
fn x86_q4_1_kernels_sum_exactly_as_ggml_x86_code_does() {
    let isas: Vec<Isa> = [Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|i| i.is_available())
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    for (rows, cols) in [(37, 96), (23, 1056)] {
        let m = random_matrix(&mut rng, BlockFormat::Q4_1, rows, cols);
        let x = random_activations(&mut rng, 6, cols);
        let row_bytes = cols / 32 * 20;
        let mut want = vec![0.0f32; 6 * rows];
        for (i, xs) in x.chunks_exact(cols).enumerate() {
            let mut act = vec![crate::Q8Block::default(); cols / 32];
            crate::quantize_row_q8(xs, &mut act);
            for r in 0..rows {
                want[i * rows + r] = ggml_x86_q4_1_row(&m.data()[r * row_bytes..(r + 1) * row_bytes], &act);
            }
        }
        for &isa in &isas {
            let mut got = vec![f32::NAN; 6 * rows];
            m.matmul_into_with(isa, &x, &mut got);
            assert_eq!(got, want, "{isa:?} [{rows}x{cols}]");
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

#[test]
fn simd_kernels_agree_with_scalar_on_saturated_blocks() {
    // Every weight byte 0x80 (Q8_0's -128), 0xff (the largest nibble and 6-bit value, scale
    // bytes of -1 or 63) or 0x7f, against activations at full scale with one sign or both: the
    // largest integer sums any kernel forms, where a narrow intermediate would overflow.
    let mut rng = StdRng::seed_from_u64(5);
    for format in FORMATS {
        let (rows, cols) = (3, 2 * format.block_elems());
        let signs: [&dyn Fn(usize) -> f32; 3] = [&|_| 3.0, &|_| -3.0, &|i| if i % 2 == 0 { 3.0 } else { -3.0 }];
        for byte in [0x80u8, 0xff, 0x7f] {
            let mut data = vec![byte; rows * cols / format.block_elems() * format.block_bytes()];
            for block in data.chunks_exact_mut(format.block_bytes()) {
                for &at in scale_offsets(format) {
                    block[at..at + 2].copy_from_slice(&random_scale(&mut rng).to_le_bytes());
                }
            }
            let m = QMatrix::new(format, rows, cols, data).expect("whole blocks");
            for sign in signs {
                let x: Vec<f32> = (0..4 * cols).map(sign).collect();
                let tol = magnitudes(&dequantized(&m), &x, rows, cols);
                let mut want = vec![0.0f32; 4 * rows];
                m.matmul_into_with(Isa::Scalar, &x, &mut want);
                for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
                    let mut got = vec![f32::NAN; 4 * rows];
                    m.matmul_into_with(isa, &x, &mut got);
                    for ((g, w), t) in got.iter().zip(&want).zip(&tol) {
                        assert!((g - w).abs() <= 1e-5 * t, "{isa:?} {format:?} {byte:#x}: {g} vs {w}");
                    }
                }
            }
        }
    }
}

#[test]
fn only_instruction_sets_of_this_architecture_are_available() {
    for isa in Isa::ALL {
        let native = match isa {
            Isa::Scalar => true,
            Isa::Avx2 | Isa::Avx512Vnni => cfg!(target_arch = "x86_64"),
            Isa::Neon | Isa::NeonDotprod => cfg!(target_arch = "aarch64"),
        };
        assert!(
            native || !isa.is_available(),
            "{isa:?} available on a foreign architecture"
        );
    }
    assert!(Isa::best().is_available());
    // NEON is part of every AArch64 CPU, so an AArch64 build never falls back to scalar.
    #[cfg(target_arch = "aarch64")]
    assert_ne!(Isa::best(), Isa::Scalar);
}

/// CI runs this suite on emulated CPUs with and without optional extensions (`.ci/test-aarch64`)
/// and names the instruction set each must pick in `AIRLOCK_EXPECT_BEST_ISA`, so a detection
/// mistake cannot quietly leave a set of kernels untested.
#[test]
fn best_instruction_set_is_the_one_ci_expects_for_this_cpu() {
    let Ok(want) = std::env::var("AIRLOCK_EXPECT_BEST_ISA") else {
        return;
    };
    assert_eq!(format!("{:?}", Isa::best()), want);
}
