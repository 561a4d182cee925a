//! The packed projection under burn's autodiff on the CPU, so that training keeps the frozen
//! base in the file's blocks (QLoRA, Dettmers et al., 2023) instead of an f32 copy four to eight
//! times its size.
//!
//! burn differentiates only its own ops, so the product is registered as a custom operation. Both
//! passes dequantize `W` a few thousand rows at a time and multiply each slice with burn's f32
//! matmul, so no f32 copy larger than [`SLICE_ELEMS`] ever exists: forward `y = x W^T`, one
//! slice of output columns at a time; backward, since the base is frozen, only the input's
//! gradient `dx = dy W`, summed over the slices. Why not the inference kernels (8-bit
//! activations) for the forward pass: at a few hundred tokens, gemm's f32 microkernels run
//! faster than they do; dequantizing (both passes) costs about a tenth of a training step.
//!
//! Where the CPU has AMX tiles ([`amx::available`]), both products run on them instead: each
//! slice is dequantized straight into bf16 tiles and multiplied with the bf16-rounded
//! activations (or output gradients), summed in f32, many times faster than f32 FMA.

use std::ops::Range;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex, GradientCheckpointingStrategy};
use burn::tensor::{Device, Tensor, TensorData, s};
use rayon::prelude::*;

use airlock_gguf::GgmlType;
use airlock_kernels::amx::{self, Bf16Rows, Bf16Tiles, Store};
use airlock_kernels::{BlockFormat, QMatrix, ops};

/// The most weights dequantized at once, in either pass (4 MiB of f32).
const SLICE_ELEMS: usize = 1 << 20;

/// Whether the product with `x` must be recorded: `x` is tracked on the CPU's autodiff device.
pub(crate) fn is_tracked_on_cpu<const D: usize>(x: &Tensor<D>) -> bool {
    x.is_tracked() && x.device() == Device::flex()
}

/// `x W^T` for an `x` (`[batch, seq, in]`) that [`is_tracked_on_cpu`].
pub(super) fn linear(x: Tensor<3>, w: &Arc<QMatrix>) -> Tensor<3> {
    match x.device().gradient_checkpointing_strategy() {
        Some(GradientCheckpointingStrategy::Disabled) => tracked::<NoCheckpointing>(x, w),
        Some(GradientCheckpointingStrategy::Balanced) => tracked::<BalancedCheckpointing>(x, w),
        None => panic!("the caller checks that x is tracked"),
    }
}

fn tracked<C: CheckpointStrategy>(x: Tensor<3>, w: &Arc<QMatrix>) -> Tensor<3>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let x = x
        .try_into_primitive::<Autodiff<Flex, C>>()
        .expect("the device said Autodiff<Flex> with this strategy");
    let input = Tensor::<3>::from_primitive::<Flex>(x.primitive().clone());
    let [batch, seq, cols] = input.dims();
    let input = input.reshape([batch * seq, cols]);
    let output = if on_tiles() {
        tiles_forward(input, w)
    } else {
        let parts = slices(w).map(|rows| input.clone().matmul(dequantize_rows(w, rows).transpose()));
        Tensor::cat(parts.collect(), 1)
    };
    let output = output
        .reshape([batch, seq, w.rows()])
        .try_into_primitive::<Flex>()
        .expect("made on the flex device");
    let out = match PackedLinear.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Arc::clone(w), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Autodiff<Flex, C>>(out)
}

#[derive(Debug)]
struct PackedLinear;

impl Backward<Flex, 1> for PackedLinear {
    type State = Arc<QMatrix>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            let dy = Tensor::<3>::from_primitive::<Flex>(dy);
            let [batch, seq, rows] = dy.dims();
            let dy = dy.reshape([batch * seq, rows]);
            if on_tiles() {
                return tiles_backward(dy, &w)
                    .reshape([batch, seq, w.cols()])
                    .try_into_primitive::<Flex>()
                    .expect("gradients stay on the flex device");
            }
            let mut dx: Option<Tensor<2>> = None;
            for rows in slices(&w) {
                let part = dy.clone().slice(s![.., rows.clone()]).matmul(dequantize_rows(&w, rows));
                dx = Some(match dx {
                    Some(dx) => dx + part,
                    None => part,
                });
            }
            let dx = dx.expect("a projection has rows").reshape([batch, seq, w.cols()]);
            dx.try_into_primitive::<Flex>()
                .expect("gradients stay on the flex device")
        });
    }
}

/// Whether the products run on AMX tiles.
fn on_tiles() -> bool {
    #[cfg(test)]
    if tests::F32_PRODUCTS.get() {
        return false;
    }
    amx::available()
}

/// `x W^T` on AMX tiles, `x`: `[m, cols]` -> `[m, rows]`. Computed as `(W x^T)^T`, so that the
/// weights go into tiles row by row as they dequantize and only the small `x` is rearranged.
fn tiles_forward(x: Tensor<2>, w: &QMatrix) -> Tensor<2> {
    let [m, cols] = x.dims();
    let x = host(x);
    let x_t = Bf16Tiles::transposed(m, cols, |i, row| amx::convert(&x[i * cols..(i + 1) * cols], row));
    let mut y = vec![0.0; m * w.rows()];
    let rows_of = RowSource::new(w);
    for rows in slices(w) {
        let a = Bf16Rows::from_rows(rows.len(), cols, |j, row| rows_of.dequantize_bf16(rows.start + j, row));
        amx::matmul(&a, 0, &x_t, &mut y[rows.start..], w.rows(), Store::Transpose);
    }
    Tensor::from_data(TensorData::new(y, [m, w.rows()]), &Device::flex())
}

/// `dy W` on AMX tiles, `dy`: `[m, rows]` -> `[m, cols]`, summed over the slices of `W`'s rows.
fn tiles_backward(dy: Tensor<2>, w: &QMatrix) -> Tensor<2> {
    let [m, rows] = dy.dims();
    let dy = Bf16Rows::new(&host(dy), m, rows);
    let mut dx = vec![0.0; m * w.cols()];
    let rows_of = RowSource::new(w);
    for rows in slices(w) {
        let b = Bf16Tiles::direct(rows.len(), w.cols(), |i, row| {
            rows_of.dequantize_bf16(rows.start + i, row)
        });
        amx::matmul(&dy, rows.start, &b, &mut dx, w.cols(), Store::Add);
    }
    Tensor::from_data(TensorData::new(dx, [m, w.cols()]), &Device::flex())
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("activations are f32")
}

/// `w`'s rows in slices of at most [`SLICE_ELEMS`] weights, each starting at a multiple of a
/// tile's `k` (the backward pass's tiles cut `dy`'s columns there).
fn slices(w: &QMatrix) -> impl Iterator<Item = Range<usize>> + use<> {
    let rows = w.rows();
    let step = (SLICE_ELEMS / w.cols().max(1) / amx::TILE_K * amx::TILE_K).max(amx::TILE_K);
    (0..rows).step_by(step).map(move |r0| r0..(r0 + step).min(rows))
}

/// Dequantizes single rows of a packed matrix.
struct RowSource<'a> {
    w: &'a QMatrix,
    ty: GgmlType,
    row_bytes: usize,
}

impl<'a> RowSource<'a> {
    fn new(w: &'a QMatrix) -> Self {
        let ty = GgmlType::ALL
            .into_iter()
            .find(|t| BlockFormat::from_name(t.name()) == Some(w.format()))
            .expect("kernel formats are GGUF block types");
        let row_bytes = w.cols() / w.format().block_elems() * w.format().block_bytes();
        Self { w, ty, row_bytes }
    }

    /// Row `r` of `w` into `out` (`cols` values).
    fn dequantize(&self, r: usize, out: &mut [f32]) {
        if !ops::dequantize(self.w.format(), self.bytes(r), out) {
            airlock_gguf::dequantize(self.ty, self.bytes(r), out).expect("rows are whole blocks");
        }
    }

    /// Row `r` of `w` into `out` as bf16 (`cols` values), for [`amx`].
    fn dequantize_bf16(&self, r: usize, out: &mut [u16]) {
        if !amx::dequantize(self.w.format(), self.bytes(r), out) {
            let mut values = vec![0.0; out.len()];
            self.dequantize(r, &mut values);
            amx::convert(&values, out);
        }
    }

    fn bytes(&self, r: usize) -> &[u8] {
        &self.w.data()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
}

/// `rows` of `w` as an f32 tensor `[rows.len(), cols]`.
fn dequantize_rows(w: &QMatrix, rows: Range<usize>) -> Tensor<2> {
    let source = RowSource::new(w);
    let (cols, n) = (w.cols(), rows.len());
    let mut values = vec![0.0; n * cols];
    values
        .par_chunks_mut(cols)
        .zip(rows)
        .for_each(|(out, r)| source.dequantize(r, out));
    Tensor::from_data(TensorData::new(values, [n, cols]), &Device::flex())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::Cell;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    thread_local! {
        /// Keeps the products in f32 on a CPU with AMX, so that both paths are tested there.
        pub(super) static F32_PRODUCTS: Cell<bool> = const { Cell::new(false) };
    }

    /// A packed `[rows, cols]` matrix and its exact dequantized values.
    fn matrix(ty: GgmlType, format: BlockFormat, rows: usize, cols: usize) -> (Arc<QMatrix>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(7);
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let bytes = airlock_gguf::quantize(ty, &values).expect("quantizes");
        let mut exact = vec![0.0; values.len()];
        airlock_gguf::dequantize(ty, &bytes, &mut exact).expect("dequantizes");
        let w = QMatrix::new(format, rows, cols, bytes).expect("whole blocks");
        (Arc::new(w), exact)
    }

    /// Output and input gradient of `sum(c * (x W^T))`, through `f`.
    fn run(
        device: &Device,
        x: &[f32],
        c: &[f32],
        shape: [usize; 3],
        f: impl Fn(Tensor<3>) -> Tensor<3>,
    ) -> (Vec<f32>, Vec<f32>) {
        let x = Tensor::<3>::from_data(TensorData::new(x.to_vec(), shape), device).require_grad();
        let y = f(x.clone());
        let c = Tensor::<3>::from_data(TensorData::new(c.to_vec(), y.dims()), device);
        let grads = (y.clone() * c).sum().backward();
        let dx = x.grad(&grads).expect("x has a gradient");
        let values = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().expect("f32");
        (values(y.inner()), values(dx))
    }

    #[test]
    fn matches_burns_matmul_by_the_dequantized_weights() {
        // Tall enough (3000 rows) that both passes dequantize in several slices.
        for (ty, format) in [(GgmlType::Q4_1, BlockFormat::Q4_1), (GgmlType::Q8_0, BlockFormat::Q8_0)] {
            let (rows, cols, shape) = (3000, 384, [2, 3, 384]);
            let (w, exact) = matrix(ty, format, rows, cols);
            let mut rng = StdRng::seed_from_u64(8);
            let x: Vec<f32> = (0..6 * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let c: Vec<f32> = (0..6 * rows).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            // Where the CPU has AMX tiles, both paths: products kept in f32, and on tiles.
            let paths: &[bool] = if amx::available() { &[true, false] } else { &[true] };
            for device in [
                Device::flex().autodiff(),
                Device::flex().autodiff().gradient_checkpointing(),
            ] {
                for &f32_products in paths {
                    F32_PRODUCTS.set(f32_products);
                    // On AMX tiles both operands of each product are rounded to bf16; the reference
                    // multiplies the same rounded values in f32.
                    let operand = |v: &[f32]| -> Vec<f32> {
                        match on_tiles() {
                            true => v.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect(),
                            false => v.to_vec(),
                        }
                    };
                    let dense = Tensor::<2>::from_data(TensorData::new(operand(&exact), [rows, cols]), &device);
                    let (y_ref, dx_ref) = run(&device, &operand(&x), &operand(&c), shape, |x| {
                        x.matmul(dense.clone().transpose().unsqueeze())
                    });
                    let (y, dx) = run(&device, &x, &c, shape, |x| {
                        assert!(is_tracked_on_cpu(&x));
                        linear(x, &w)
                    });
                    // Equal up to summation order.
                    let worst = dx.iter().zip(&dx_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(worst < 1e-3, "{ty:?}, f32 {f32_products}: dx differs by {worst}");
                    let worst = y.iter().zip(&y_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(worst < 1e-3, "{ty:?}, f32 {f32_products}: y differs by {worst}");
                }
            }
        }
    }

    #[test]
    fn only_tracked_inputs_are_recorded() {
        assert!(!is_tracked_on_cpu(&Tensor::<3>::zeros([1, 1, 32], &Device::flex())));
        let constant = Tensor::<3>::zeros([1, 1, 32], &Device::flex().autodiff());
        assert!(!is_tracked_on_cpu(&constant));
        assert!(is_tracked_on_cpu(&constant.require_grad()));
    }
}
