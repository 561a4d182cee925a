//! Micro-benchmark of the packed-weight kernels: weight streaming (GB/s) for decode (n = 1) and
//! GFLOP/s for a prefill (n = 128), scalar against each SIMD instruction set this CPU has, next
//! to the machine's memory read bandwidth (the floor a decode cannot beat).
//!
//! `cargo run --release -p airlock-kernels --example kernel_bench`
//!
//! "hot" repeats one matrix (it stays in cache); "cold" cycles through copies totalling 256 MiB,
//! as a decode step walks a model too large for the last-level cache.

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock_kernels::{BlockFormat, Isa, QMatrix};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Random blocks with small random f16 scales over every scale field.
fn random_matrix(rng: &mut StdRng, format: BlockFormat, rows: usize, cols: usize) -> QMatrix {
    let bytes = rows * cols / format.block_elems() * format.block_bytes();
    let mut data: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    let scales: &[usize] = match format {
        BlockFormat::Q4_0 | BlockFormat::Q8_0 => &[0],
        BlockFormat::Q4_1 | BlockFormat::Q4_K => &[0, 2],
        BlockFormat::Q6_K => &[208],
    };
    for block in data.chunks_exact_mut(format.block_bytes()) {
        for &at in scales {
            let d = f16::from_f32(rng.random_range(-0.05f32..0.05));
            block[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    QMatrix::new(format, rows, cols, data).expect("whole blocks")
}

/// The fastest of `reps` timings of `f`, after one warm-up call.
fn best_of(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// GB/s of summing a 1 GiB array with every rayon thread.
fn memory_bandwidth() -> f64 {
    let words = (1usize << 30) / 8;
    let mut v = vec![0u64; words];
    v.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, c)| c.fill(i as u64));
    let t = best_of(5, || {
        let s: u64 = v
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
    });
    (1u64 << 30) as f64 / t.as_secs_f64() / 1e9
}

fn isas() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
}

fn decode_row(rng: &mut StdRng, format: BlockFormat, rows: usize, cols: usize) {
    let m = random_matrix(rng, format, rows, cols);
    let bytes = m.data().len();
    let copies: Vec<QMatrix> = (0..(256 << 20) / bytes)
        .map(|_| random_matrix(rng, format, rows, cols))
        .collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0.0f32; rows];
    let mut line = format!("{format:?} {rows}x{cols} n=1 ({:.2} MB)", bytes as f64 / 1e6);
    let mut scalar = (0.0, 0.0);
    for isa in isas() {
        let reps = if isa == Isa::Scalar { 20 } else { 200 };
        let hot = best_of(reps, || m.matmul_into_with(isa, &x, &mut out));
        let cold = best_of(3, || copies.iter().for_each(|c| c.matmul_into_with(isa, &x, &mut out)));
        let hot_gbs = bytes as f64 / hot.as_secs_f64() / 1e9;
        let cold_gbs = (bytes * copies.len()) as f64 / cold.as_secs_f64() / 1e9;
        if isa == Isa::Scalar {
            scalar = (hot_gbs, cold_gbs);
        }
        line += &format!(
            " | {isa:?}: hot {hot_gbs:.1} GB/s ({:.1} us, x{:.1}), cold {cold_gbs:.1} GB/s (x{:.1})",
            hot.as_secs_f64() * 1e6,
            hot_gbs / scalar.0,
            cold_gbs / scalar.1
        );
    }
    println!("{line}");
}

fn prefill_row(rng: &mut StdRng, format: BlockFormat, rows: usize, cols: usize, n: usize) {
    let m = random_matrix(rng, format, rows, cols);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0.0f32; n * rows];
    let flops = 2.0 * (rows * cols * n) as f64;
    let mut line = format!("{format:?} {rows}x{cols} n={n}");
    let mut scalar = 0.0;
    for isa in isas() {
        let reps = if isa == Isa::Scalar { 2 } else { 10 };
        let t = best_of(reps, || m.matmul_into_with(isa, &x, &mut out));
        let gflops = flops / t.as_secs_f64() / 1e9;
        if isa == Isa::Scalar {
            scalar = gflops;
        }
        line += &format!(
            " | {isa:?}: {gflops:.1} GFLOP/s ({:.2} ms, x{:.1})",
            t.as_secs_f64() * 1e3,
            gflops / scalar
        );
    }
    println!("{line}");
}

fn main() {
    println!(
        "threads: {}, best instruction set: {:?}",
        rayon::current_num_threads(),
        Isa::best()
    );
    println!(
        "memory read bandwidth (sum of 1 GiB, all threads): {:.1} GB/s",
        memory_bandwidth()
    );
    let mut rng = StdRng::seed_from_u64(1);
    decode_row(&mut rng, BlockFormat::Q4_1, 576, 1536);
    decode_row(&mut rng, BlockFormat::Q4_1, 4096, 4096);
    for format in [
        BlockFormat::Q4_0,
        BlockFormat::Q8_0,
        BlockFormat::Q4_K,
        BlockFormat::Q6_K,
    ] {
        decode_row(&mut rng, format, 4096, 4096);
    }
    prefill_row(&mut rng, BlockFormat::Q4_1, 576, 1536, 128);
    for format in [BlockFormat::Q4_1, BlockFormat::Q4_K, BlockFormat::Q6_K] {
        prefill_row(&mut rng, format, 4096, 4096, 128);
    }
}
