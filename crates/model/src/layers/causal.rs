//! Causal grouped-query attention as one burn autodiff op on the CPU, for training.
//!
//! burn differentiates attention through its generic decomposition (matmul, mask, softmax as
//! exp/sum/div, matmul) with the key/value heads copied out to every query head, and records
//! each of those ops: measured on medical-billing steps, attention was a quarter of a training
//! step for a few percent of its arithmetic. Here the forward pass and the hand-derived backward
//! pass (Vaswani et al., 2017; the softmax gradient as in Dao et al., 2022, "FlashAttention")
//! are each a few batched f32 matmuls on burn's CPU device plus one host loop over rows, and the
//! query heads that share a key/value head are stacked into one matrix, so nothing is copied
//! per head.
//!
//! Shapes: `G` key/value heads, `R` query heads per key/value head, `L` positions, `D` head dim.
//! Query head `h` reads key/value head `h / R`, as llama.cpp groups them.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex, GradientCheckpointingStrategy};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// `softmax(q k^T / sqrt(D) + causal mask) v` for one sequence whose keys and values are all
/// of `k`, `v` (an empty cache): `q` `[1, G*R, L, D]`, `k`, `v` `[1, G, L, D]` ->
/// `[1, G*R, L, D]`, for a `q` tracked on the CPU's autodiff device.
pub(super) fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    match q.device().gradient_checkpointing_strategy() {
        Some(GradientCheckpointingStrategy::Disabled) => tracked::<NoCheckpointing>(q, k, v),
        Some(GradientCheckpointingStrategy::Balanced) => tracked::<BalancedCheckpointing>(q, k, v),
        None => panic!("the caller checks that q is tracked"),
    }
}

fn tracked<C: CheckpointStrategy>(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let [_, heads, len, dim] = q.dims();
    let groups = k.dims()[1];
    let [q, k, v] = [q, k, v].map(|t| {
        t.try_into_primitive::<Autodiff<Flex, C>>()
            .expect("the device said Autodiff<Flex> with this strategy")
    });
    let [q_in, k_in, v_in] = [(&q, heads / groups * len), (&k, len), (&v, len)]
        .map(|(t, rows)| Tensor::<4>::from_primitive::<Flex>(t.primitive().clone()).reshape([groups, rows, dim]));
    let scores = q_in.clone().matmul(k_in.clone().swap_dims(1, 2)); // [G, R*L, L]
    let scale = (dim as f32).powf(-0.5);
    let probs = map_rows(scores, len, |pos, row| softmax_causal(row, pos, scale));
    let out = probs.clone().matmul(v_in.clone()); // [G, R*L, D]
    let saved = Saved {
        q: q_in,
        k: k_in,
        v: v_in,
        probs,
        len,
    };
    let output = out
        .reshape([1, heads, len, dim])
        .try_into_primitive::<Flex>()
        .expect("made on the flex device");
    let result = match CausalAttention
        .prepare::<C>([q.node(), k.node(), v.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(saved, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Autodiff<Flex, C>>(result)
}

/// What the backward pass needs: the inputs, grouped, and the attention weights.
#[derive(Debug, Clone)]
struct Saved {
    q: Tensor<3>,     // [G, R*L, D]
    k: Tensor<3>,     // [G, L, D]
    v: Tensor<3>,     // [G, L, D]
    probs: Tensor<3>, // [G, R*L, L], zero above the diagonal
    len: usize,
}

#[derive(Debug)]
struct CausalAttention;

impl Backward<Flex, 3> for CausalAttention {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { q, k, v, probs, len } = ops.state;
        let [groups, rows, dim] = q.dims();
        let d_out = Tensor::<4>::from_primitive::<Flex>(grads.consume::<Flex>(&ops.node)).reshape([groups, rows, dim]);
        let scale = (dim as f32).powf(-0.5);
        // With O = P V and P = softmax(S): dV = P^T dO, dP = dO V^T, and
        // dS = P * (dP - rowsum(dO * O)), where rowsum(dO * O) = rowsum(P * dP).
        let d_v = probs.clone().swap_dims(1, 2).matmul(d_out.clone()); // [G, L, D]
        let d_probs = d_out.matmul(v.swap_dims(1, 2)); // [G, R*L, L]
        let d_scores = softmax_backward(probs, d_probs, len, scale); // [G, R*L, L], scaled
        let d_q = d_scores.clone().matmul(k); // [G, R*L, D]
        let d_k = d_scores.swap_dims(1, 2).matmul(q); // [G, L, D]
        let [p_q, p_k, p_v] = ops.parents;
        for (parent, grad, heads) in [(p_q, d_q, rows / len), (p_k, d_k, 1), (p_v, d_v, 1)] {
            if let Some(node) = parent {
                let grad = grad
                    .reshape([1, groups * heads, len, dim])
                    .try_into_primitive::<Flex>()
                    .expect("gradients stay on the flex device");
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// Applies `f(position, row)` to every row of `x` (`[G, R*L, L]`), in parallel; row `r` of a
/// group is query position `r % L`.
fn map_rows(x: Tensor<3>, len: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Tensor<3> {
    let dims = x.dims();
    let mut values = x.into_data().try_into_vec::<f32>().expect("f32 scores");
    values
        .par_chunks_mut(len)
        .enumerate()
        .for_each(|(r, row)| f(r % len, row));
    Tensor::from_data(TensorData::new(values, dims), &Device::flex())
}

/// One row of raw scores in place: scaled, masked past `pos`, softmax.
fn softmax_causal(row: &mut [f32], pos: usize, scale: f32) {
    let (seen, future) = row.split_at_mut(pos + 1);
    future.fill(0.0);
    let max = seen.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s)) * scale;
    let mut sum = 0.0;
    for s in seen.iter_mut() {
        *s = (*s * scale - max).exp();
        sum += *s;
    }
    seen.iter_mut().for_each(|s| *s /= sum);
}

/// `scale * P * (dP - rowsum(P * dP))`, row by row, into `d_probs`' buffer; `P` is zero past
/// each row's position, so the result is too.
fn softmax_backward(probs: Tensor<3>, d_probs: Tensor<3>, len: usize, scale: f32) -> Tensor<3> {
    let dims = d_probs.dims();
    let probs = probs.into_data().try_into_vec::<f32>().expect("f32 weights");
    let mut grad = d_probs.into_data().try_into_vec::<f32>().expect("f32 gradients");
    grad.par_chunks_mut(len).zip(probs.par_chunks(len)).for_each(|(g, p)| {
        let dot: f32 = g.iter().zip(p).map(|(g, p)| g * p).sum();
        g.iter_mut().zip(p).for_each(|(g, p)| *g = scale * p * (*g - dot));
    });
    Tensor::from_data(TensorData::new(grad, dims), &Device::flex())
}

#[cfg(test)]
mod tests {
    use super::*;

    use burn::tensor::module::attention as reference;
    use burn::tensor::ops::AttentionModuleOptions;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut StdRng, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        Tensor::from_data(TensorData::new(values, shape), device).require_grad()
    }

    #[test]
    fn matches_burns_attention_and_its_gradients() {
        let (groups, reps, len, dim) = (3, 3, 7, 16);
        let device = Device::flex().autodiff();
        let mut rng = StdRng::seed_from_u64(3);
        let q = random(&mut rng, [1, groups * reps, len, dim], &device);
        let k = random(&mut rng, [1, groups, len, dim], &device);
        let v = random(&mut rng, [1, groups, len, dim], &device);
        let c = random(&mut rng, [1, groups * reps, len, dim], &device).detach();
        let share = |t: Tensor<4>| {
            t.unsqueeze_dim::<5>(2)
                .expand([1, groups, reps, len, dim])
                .reshape([1, groups * reps, len, dim])
        };
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let want = reference(q.clone(), share(k.clone()), share(v.clone()), None, None, options);
        let want_grads = (want.clone() * c.clone()).sum().backward();
        assert!(crate::layers::is_tracked_on_cpu(&q));
        let got = attention(q.clone(), k.clone(), v.clone());
        let got_grads = (got.clone() * c).sum().backward();
        let values = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().expect("f32");
        let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-4, "{what} differs by {worst}");
        };
        close(values(got.inner()), values(want.inner()), "output");
        for (name, t) in [("dq", &q), ("dk", &k), ("dv", &v)] {
            let g = t.grad(&got_grads).expect("a gradient");
            let w = t.grad(&want_grads).expect("a gradient");
            close(values(g), values(w), name);
        }
    }
}
