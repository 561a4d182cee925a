//! `Y = X W^T` with `W` in packed GGUF blocks: each activation row is quantized once, then the
//! output columns are split across the rayon pool (both cores busy during decode).

use rayon::prelude::*;

use crate::{BLOCK, Q8Block, dot, quantize_row_q8};

/// The packed block formats these kernels compute on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl BlockFormat {
    /// By GGUF type name (`"Q4_1"`); `None` for formats without a kernel.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "Q4_0" => Some(Self::Q4_0),
            "Q4_1" => Some(Self::Q4_1),
            "Q8_0" => Some(Self::Q8_0),
            _ => None,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
        }
    }

    fn dot(self) -> fn(&[u8], &[Q8Block]) -> f32 {
        match self {
            Self::Q4_0 => dot::q4_0,
            Self::Q4_1 => dot::q4_1,
            Self::Q8_0 => dot::q8_0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QMatrixError {
    #[error("a packed matrix row of {cols} elements is not a whole number of {BLOCK}-element blocks")]
    RowLength { cols: usize },
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
    data: Vec<u8>, // [rows, cols / 32 blocks]
}

impl QMatrix {
    pub fn new(format: BlockFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, QMatrixError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(QMatrixError::RowLength { cols });
        }
        if data.len() != rows * cols / BLOCK * format.block_bytes() {
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

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.format.block_bytes()
    }

    /// `x`: `[n, cols]` row-major; returns `[n, rows]`.
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / self.cols;
        let blocks = self.cols / BLOCK;
        let mut act = vec![Q8Block::default(); n * blocks];
        act.par_chunks_mut(blocks)
            .zip(x.par_chunks(self.cols))
            .for_each(|(a, xs)| quantize_row_q8(xs, a));
        let dot = self.format.dot();
        let row_bytes = self.row_bytes();
        // Output transposed ([rows, n]) so each task owns whole weight rows and reads them once.
        let mut out_t = vec![0.0f32; self.rows * n];
        out_t
            .par_chunks_mut(n * 16)
            .zip(self.data.par_chunks(row_bytes * 16))
            .for_each(|(out, w)| {
                for (o, row) in out.chunks_mut(n).zip(w.chunks(row_bytes)) {
                    for (v, a) in o.iter_mut().zip(act.chunks(blocks)) {
                        *v = dot(row, a);
                    }
                }
            });
        if n == 1 {
            return out_t;
        }
        let mut out = vec![0.0f32; n * self.rows];
        for r in 0..self.rows {
            for i in 0..n {
                out[i * self.rows + r] = out_t[r * n + i];
            }
        }
        out
    }
}
