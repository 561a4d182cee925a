//! `Y = X W^T` with `W` in packed GGUF blocks (ggml-cpu's `ggml_compute_forward_mul_mat`): each
//! activation row is quantized once into a thread-local scratch, then weight rows are split into
//! chunks across the rayon pool; within a chunk each weight row meets the activation rows a tile
//! of [`TILE`] at a time, so a prefill unpacks each weight block once per tile and a decode
//! streams each weight row exactly once. Results go straight into `[n, rows]`.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::thread::LocalKey;

use rayon::prelude::*;

use crate::dot::{Isa, RowDot};
use crate::{BLOCK, Q8Block, Q8KBlock, QK_K, TILE, quantize_row_q8, quantize_row_q8k};

/// The packed block formats these kernels compute on.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    Q4_0,
    Q4_1,
    Q8_0,
    Q4_K,
    Q6_K,
}

impl BlockFormat {
    /// By GGUF type name (`"Q4_1"`); `None` for formats without a kernel.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Q4_0" => Some(Self::Q4_0),
            "Q4_1" => Some(Self::Q4_1),
            "Q8_0" => Some(Self::Q8_0),
            "Q4_K" => Some(Self::Q4_K),
            "Q6_K" => Some(Self::Q6_K),
            _ => None,
        }
    }

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q8_0 => BLOCK,
            Self::Q4_K | Self::Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q6_K => 210,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QMatrixError {
    #[error("a packed {format:?} row of {cols} elements is not a whole number of {block}-element blocks")]
    RowLength {
        cols: usize,
        block: usize,
        format: BlockFormat,
    },
    #[error("{bytes} bytes do not hold {rows} rows of {cols} {format:?} elements")]
    Size {
        bytes: usize,
        rows: usize,
        cols: usize,
        format: BlockFormat,
    },
}

/// A weight matrix `[rows, cols]` in packed blocks, row-major as GGUF stores it.
#[derive(Debug, Clone)]
pub struct QMatrix {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    data: Vec<u8>, // [rows, cols / block_elems blocks]
}

impl QMatrix {
    pub fn new(format: BlockFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, QMatrixError> {
        let block = format.block_elems();
        if !cols.is_multiple_of(block) {
            return Err(QMatrixError::RowLength { cols, block, format });
        }
        if data.len() != rows * cols / block * format.block_bytes() {
            return Err(QMatrixError::Size {
                bytes: data.len(),
                rows,
                cols,
                format,
            });
        }
        Ok(Self {
            format,
            rows,
            cols,
            data,
        })
    }

    pub fn format(&self) -> BlockFormat {
        self.format
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The packed bytes, `[rows, cols / block_elems]` blocks.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// `x`: `[n, cols]` row-major; returns `[n, rows]`.
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; x.len() / self.cols.max(1) * self.rows];
        self.matmul_into(x, &mut out);
        out
    }

    /// `x`: `[n, cols]`, `out`: `[n, rows]`, with the fastest kernels this CPU has.
    ///
    /// # Panics
    /// If `x` is not whole rows or `out` is not `[n, rows]`.
    pub fn matmul_into(&self, x: &[f32], out: &mut [f32]) {
        self.matmul_into_with(Isa::best(), x, out);
    }

    /// As [`QMatrix::matmul_into`] with the kernels of `isa` (benchmarks and tests compare them).
    ///
    /// # Panics
    /// If this CPU lacks `isa`, if `x` is not whole rows or `out` is not `[n, rows]`.
    pub fn matmul_into_with(&self, isa: Isa, x: &[f32], out: &mut [f32]) {
        assert!(isa.is_available(), "this CPU cannot run {isa:?} kernels");
        let n = x.len().checked_div(self.cols).unwrap_or(0);
        assert_eq!(
            x.len(),
            n * self.cols,
            "x is not a whole number of {}-element rows",
            self.cols
        );
        assert_eq!(out.len(), n * self.rows, "out is not [{n}, {}]", self.rows);
        let k = isa.kernels();
        match self.format {
            BlockFormat::Q4_0 => self.run(k.q4_0, x, out),
            BlockFormat::Q4_1 => self.run(k.q4_1, x, out),
            BlockFormat::Q8_0 => self.run(k.q8_0, x, out),
            BlockFormat::Q4_K => self.run(k.q4_k, x, out),
            BlockFormat::Q6_K => self.run(k.q6_k, x, out),
        }
    }

    /// Requires `dot` to be a kernel of an available instruction set (checked by the caller).
    fn run<A: Activation>(&self, dot: RowDot<A>, x: &[f32], out: &mut [f32]) {
        let (rows, cols) = (self.rows, self.cols);
        if rows == 0 || x.is_empty() {
            out.fill(0.0);
            return;
        }
        let n = x.len() / cols;
        let blocks = cols / A::ELEMS;
        let row_bytes = blocks * self.format.block_bytes();

        // Taken out of the thread-local rather than borrowed, so that a nested call (rayon may run
        // another matmul on this thread while we wait) allocates its own instead of panicking.
        let mut act = A::scratch().take();
        act.clear();
        act.resize(n * blocks, A::default()); // [n, blocks]
        if n == 1 {
            A::quantize(x, &mut act);
        } else {
            act.par_chunks_mut(blocks)
                .zip(x.par_chunks(cols))
                .for_each(|(a, xs)| A::quantize(xs, a));
        }

        let chunk = chunk_rows(rows, row_bytes, n);
        let out_ptr = OutPtr(out.as_mut_ptr());
        let task = |c: usize| {
            let (r0, r1) = (c * chunk, ((c + 1) * chunk).min(rows));
            for i0 in (0..n).step_by(TILE) {
                let tile_rows = TILE.min(n - i0);
                let tile = &act[i0 * blocks..(i0 + tile_rows) * blocks];
                for r in r0..r1 {
                    // SAFETY: the caller checked that `dot`'s instruction set is available; the
                    // row and the tile are whole blocks, as the kernel contract asks.
                    let v = unsafe { dot(&self.data[r * row_bytes..(r + 1) * row_bytes], tile, blocks) };
                    for (k, &v) in v[..tile_rows].iter().enumerate() {
                        // SAFETY: `(i0 + k) * rows + r < n * rows == out.len()`, and row `r`
                        // belongs to this task alone, so no two tasks write the same element.
                        unsafe { out_ptr.write((i0 + k) * rows + r, v) };
                    }
                }
            }
        };
        let tasks = rows.div_ceil(chunk);
        if tasks == 1 {
            task(0);
        } else {
            (0..tasks).into_par_iter().for_each(task);
        }
        A::scratch().set(act);
    }
}

/// Weight rows per task: about four tasks per thread so both cores stay busy to the end, at most
/// ~64 KiB of weights so a chunk stays in L2 while the activation tiles pass over it, and no
/// splitting at all for products too small to pay for a rayon hand-off (~32 KiB of weights).
fn chunk_rows(rows: usize, row_bytes: usize, n: usize) -> usize {
    if rows * row_bytes * n.min(TILE) < 32 * 1024 {
        return rows;
    }
    let per_task = rows.div_ceil(4 * rayon::current_num_threads());
    let chunk = if n > 1 {
        per_task.min(64 * 1024 / row_bytes.max(1))
    } else {
        per_task
    };
    chunk.max(1)
}

/// The output's base pointer, shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

// SAFETY: tasks write through the pointer only at indices they own (disjoint weight rows), and
// the buffer outlives the parallel loop that uses it.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `i` must be in bounds, and no other thread may access element `i` concurrently.
    unsafe fn write(self, i: usize, v: f32) {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.0.add(i) = v };
    }
}

/// A quantized activation block type and how rows are quantized into it.
trait Activation: Copy + Default + Send + Sync + 'static {
    /// Elements per block.
    const ELEMS: usize;
    fn quantize(x: &[f32], out: &mut [Self]);
    /// This thread's reusable buffer of blocks.
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>>;
}

thread_local! {
    static Q8_SCRATCH: Cell<Vec<Q8Block>> = const { Cell::new(Vec::new()) };
    static Q8K_SCRATCH: Cell<Vec<Q8KBlock>> = const { Cell::new(Vec::new()) };
}

impl Activation for Q8Block {
    const ELEMS: usize = BLOCK;
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_q8(x, out);
    }
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &Q8_SCRATCH
    }
}

impl Activation for Q8KBlock {
    const ELEMS: usize = QK_K;
    fn quantize(x: &[f32], out: &mut [Self]) {
        quantize_row_q8k(x, out);
    }
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &Q8K_SCRATCH
    }
}
