//! Rotary position embedding (Su et al., 2021, "RoFormer") in GGUF's layout: each head's
//! dimensions are rotated in adjacent pairs `(x[2i], x[2i+1])` by angle `pos * base^(-2i/d)`,
//! as llama.cpp's `LLAMA_ROPE_TYPE_NORM` does on its row-permuted q/k weights. The angles are
//! computed as ggml computes them (`ggml_rope_cache_init`): in f32, starting from `pos` and
//! multiplying by `base^(-2/d)` once per pair, then libm's `cosf` and `sinf`, so the CPU path's
//! rotations match llama.cpp's to the last bit.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex, GradientCheckpointingStrategy};
use burn::tensor::{Device, Tensor, TensorData, s};
use rayon::prelude::*;

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
        match crate::layers::is_tracked_on_cpu(&x) {
            true => self.tracked(x, start),
            false => self.untracked(x, start),
        }
    }

    /// [`Rope::apply`] in burn's ops.
    fn untracked(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
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

/// Training: the rotation as one burn autodiff op on the CPU. burn records [`Rope::apply`]'s
/// slices, four products and a concatenation, and differentiates each; here the forward pass
/// rotates each row on the host, and the backward pass rotates the gradient back (a rotation's
/// transpose is the rotation by the opposite angle).
impl Rope {
    fn tracked(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        match x.device().gradient_checkpointing_strategy() {
            Some(GradientCheckpointingStrategy::Disabled) => self.tracked_with::<NoCheckpointing>(x, start),
            Some(GradientCheckpointingStrategy::Balanced) => self.tracked_with::<BalancedCheckpointing>(x, start),
            None => panic!("the caller checks that x is tracked"),
        }
    }

    fn tracked_with<C: CheckpointStrategy>(&self, x: Tensor<4>, start: usize) -> Tensor<4>
    where
        DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
    {
        let dims = x.dims();
        let half = dims[3] / 2;
        let at = start * half..(start + dims[2]) * half;
        let angles = Angles {
            cos: self.host_cos[at.clone()].to_vec(),
            sin: self.host_sin[at].to_vec(),
            dims,
        };
        let x = x
            .try_into_primitive::<Autodiff<Flex, C>>()
            .expect("the device said Autodiff<Flex> with this strategy");
        let output = angles
            .rotate(Tensor::from_primitive::<Flex>(x.primitive().clone()), 1.0)
            .try_into_primitive::<Flex>()
            .expect("made on the flex device");
        let result = match Rotation.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(angles, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Tensor::from_primitive::<Autodiff<Flex, C>>(result)
    }
}

/// The angles of one call's positions.
#[derive(Debug, Clone)]
struct Angles {
    cos: Vec<f32>, // [seq, head_dim / 2]
    sin: Vec<f32>, // [seq, head_dim / 2]
    dims: [usize; 4],
}

impl Angles {
    /// `x` (`[batch, heads, seq, head_dim]`) rotated by the angles times `sign` (1 or -1).
    fn rotate(&self, x: Tensor<4>, sign: f32) -> Tensor<4> {
        let [_, _, len, d] = self.dims;
        let half = d / 2;
        let sin: Vec<f32> = self.sin.iter().map(|s| s * sign).collect();
        let mut values = x.into_data().try_into_vec::<f32>().expect("activations are f32");
        values.par_chunks_mut(len * d).for_each(|head| {
            for (pos, row) in head.chunks_exact_mut(d).enumerate() {
                let at = pos * half..(pos + 1) * half;
                airlock_kernels::ops::rope(row, &self.cos[at.clone()], &sin[at]);
            }
        });
        Tensor::from_data(TensorData::new(values, self.dims), &Device::flex())
    }
}

#[derive(Debug)]
struct Rotation;

impl Backward<Flex, 1> for Rotation {
    type State = Angles;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let angles = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            angles
                .rotate(Tensor::from_primitive::<Flex>(dy), -1.0)
                .try_into_primitive::<Flex>()
                .expect("gradients stay on the flex device")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracked_rotation_matches_burns_ops_and_their_gradients() {
        let (dims, start) = ([1, 3, 7, 8], 5);
        let n: usize = dims.iter().product();
        let rope = Rope::new(8, 10_000.0, 16, &Device::flex());
        let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let c: Vec<f32> = (0..n).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let device = Device::flex().autodiff();
        let run = |tracked: bool| {
            let x = Tensor::<4>::from_data(TensorData::new(x.clone(), dims), &device).require_grad();
            let y = match tracked {
                true => rope.apply(x.clone(), start),
                false => rope.untracked(x.clone(), start),
            };
            let c = Tensor::<4>::from_data(TensorData::new(c.clone(), dims), &device);
            let grads = (y.clone() * c).sum().backward();
            let values = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().expect("f32");
            [values(y.inner()), values(x.grad(&grads).expect("a gradient"))]
        };
        let (got, want) = (run(true), run(false));
        for (name, got, want) in [("y", &got[0], &want[0]), ("dx", &got[1], &want[1])] {
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "{name} differs by {worst}");
        }
    }
}
