//! Rotary position embedding (Su et al., 2021, "RoFormer") in GGUF's layout: each head's
//! dimensions are rotated in adjacent pairs `(x[2i], x[2i+1])` by angle `pos * base^(-2i/d)`,
//! as llama.cpp's `LLAMA_ROPE_TYPE_NORM` does on its row-permuted q/k weights. The angles are
//! computed as ggml computes them (`ggml_rope_cache_init`): in f32, starting from `pos` and
//! multiplying by `base^(-2/d)` once per pair, then libm's `cosf` and `sinf`, so the CPU path's
//! rotations match llama.cpp's to the last bit.

use burn::tensor::{Device, Tensor, TensorData, s};

/// Precomputed cos/sin tables for every position up to the context length, as tensors for the
/// burn path and as host rows for the CPU path.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<2>,     // [max_len, head_dim / 2]
    sin: Tensor<2>,     // [max_len, head_dim / 2]
    host_cos: Vec<f32>, // [max_len, head_dim / 2]
    host_sin: Vec<f32>, // [max_len, head_dim / 2]
}

impl Rope {
    pub fn new(head_dim: usize, base: f32, max_len: usize, device: &Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_len * half);
        let mut sin = Vec::with_capacity(max_len * half);
        let step = base.powf(-2.0 / head_dim as f32);
        for pos in 0..max_len {
            let mut angle = pos as f32;
            for _ in 0..half {
                cos.push(angle.cos());
                sin.push(angle.sin());
                angle *= step;
            }
        }
        let table = |v: &Vec<f32>| Tensor::from_data(TensorData::new(v.clone(), [max_len, half]), device);
        Self {
            cos: table(&cos),
            sin: table(&sin),
            host_cos: cos,
            host_sin: sin,
        }
    }

    /// Rotates every head of one position in place, on the host: `x` is `[heads, head_dim]`.
    pub(crate) fn rotate_host(&self, x: &mut [f32], pos: usize) {
        let half = self.host_cos.len() / self.max_len();
        let at = pos * half..(pos + 1) * half;
        airlock_kernels::ops::rope(x, &self.host_cos[at.clone()], &self.host_sin[at]);
    }

    pub fn max_len(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotates `x` whose sequence positions start at `start`.
    pub fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [b, h, len, d] = x.dims(); // x: [batch, heads, seq, head_dim]
        let cos = self
            .cos
            .clone()
            .slice(s![start..start + len, ..])
            .reshape([1, 1, len, d / 2, 1]);
        let sin = self
            .sin
            .clone()
            .slice(s![start..start + len, ..])
            .reshape([1, 1, len, d / 2, 1]);
        let pairs = x.reshape([b, h, len, d / 2, 2]);
        let even = pairs.clone().slice(s![.., .., .., .., 0..1]); // [b, h, len, d/2, 1]
        let odd = pairs.slice(s![.., .., .., .., 1..2]);
        let rot_even = even.clone() * cos.clone() - odd.clone() * sin.clone();
        let rot_odd = even * sin + odd * cos;
        Tensor::cat(vec![rot_even, rot_odd], 4).reshape([b, h, len, d])
    }
}
