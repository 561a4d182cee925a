//! SwiGLU's gating, `silu(g) * u` (Shazeer, 2020), as one burn autodiff op on the CPU, for
//! training.
//!
//! burn records `silu` as a sigmoid and two products, each a pass over the `[seq, ffn]`
//! activations with its own allocation, and differentiates them one by one (the sigmoid's `exp`
//! in libm, a scalar call per element). Here the forward pass and its hand-derived gradients are
//! each one loop over host buffers with the vectorized `expf` of `airlock-kernels`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex, GradientCheckpointingStrategy};
use burn::tensor::{Device, Tensor, TensorData};

use airlock_kernels::ops;

/// `silu(g) * u`, `g` and `u` of the same shape, one of them tracked on the CPU's autodiff
/// device.
pub(super) fn gate(g: Tensor<3>, u: Tensor<3>) -> Tensor<3> {
    match g.device().gradient_checkpointing_strategy() {
        Some(GradientCheckpointingStrategy::Disabled) => tracked::<NoCheckpointing>(g, u),
        Some(GradientCheckpointingStrategy::Balanced) => tracked::<BalancedCheckpointing>(g, u),
        None => panic!("the caller checks that an input is tracked"),
    }
}

fn tracked<C: CheckpointStrategy>(g: Tensor<3>, u: Tensor<3>) -> Tensor<3>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let dims = g.dims();
    let [g, u] = [g, u].map(|t| {
        t.try_into_primitive::<Autodiff<Flex, C>>()
            .expect("the device said Autodiff<Flex> with this strategy")
    });
    let [gate, up] = [&g, &u].map(|t| host(Tensor::<3>::from_primitive::<Flex>(t.primitive().clone())));
    let mut out = gate.clone();
    ops::silu_mul(&mut out, &up);
    let output = Tensor::<3>::from_data(TensorData::new(out, dims), &Device::flex())
        .try_into_primitive::<Flex>()
        .expect("made on the flex device");
    let result = match SwiGlu.prepare::<C>([g.node(), u.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Saved { gate, up, dims }, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Autodiff<Flex, C>>(result)
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("activations are f32")
}

/// The inputs, for the backward pass.
#[derive(Debug, Clone)]
struct Saved {
    gate: Vec<f32>, // [dims]
    up: Vec<f32>,   // [dims]
    dims: [usize; 3],
}

#[derive(Debug)]
struct SwiGlu;

impl Backward<Flex, 2> for SwiGlu {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { gate, up, dims } = ops.state;
        let (mut d_gate, mut d_up) = (
            gate,
            host(Tensor::<3>::from_primitive::<Flex>(grads.consume::<Flex>(&ops.node))),
        );
        ops::silu_mul_backward(&mut d_gate, &up, &mut d_up);
        let [p_gate, p_up] = ops.parents;
        for (parent, grad) in [(p_gate, d_gate), (p_up, d_up)] {
            if let Some(node) = parent {
                let grad = Tensor::<3>::from_data(TensorData::new(grad, dims), &Device::flex())
                    .try_into_primitive::<Flex>()
                    .expect("gradients stay on the flex device");
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use burn::tensor::activation::silu;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_burns_silu_product_and_its_gradients() {
        let mut rng = StdRng::seed_from_u64(9);
        let shape = [1, 7, 40];
        let n = 7 * 40;
        let mut random = |scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
        let (g, u, c) = (random(6.0), random(2.0), random(1.0));
        let device = Device::flex().autodiff();
        let run = |f: &dyn Fn(Tensor<3>, Tensor<3>) -> Tensor<3>| {
            let [g, u] =
                [&g, &u].map(|v| Tensor::<3>::from_data(TensorData::new(v.clone(), shape), &device).require_grad());
            let h = f(g.clone(), u.clone());
            let c = Tensor::<3>::from_data(TensorData::new(c.clone(), shape), &device);
            let grads = (h.clone() * c).sum().backward();
            let values = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().expect("f32");
            let [dg, du] = [&g, &u].map(|t| values(t.grad(&grads).expect("a gradient")));
            [values(h.inner()), dg, du]
        };
        let got = run(&|g, u| {
            assert!(crate::layers::is_tracked_on_cpu(&g));
            gate(g, u)
        });
        let want = run(&|g, u| silu(g) * u);
        for (name, got, want) in [
            ("h", &got[0], &want[0]),
            ("dg", &got[1], &want[1]),
            ("du", &got[2], &want[2]),
        ] {
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "{name} differs by {worst}");
        }
    }
}
