//! LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models") at inference:
//! each row of a batch may carry its own adapters, each adding `scale * x A^T B^T` to the shared
//! base projections; the base weights are never changed, so adapters load and unload freely.

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{HostTensor, LayerWeight, ModelError};

/// One projection's factors as an adapter file gives them.
#[derive(Debug, Clone)]
pub struct LoraPair {
    pub layer: usize,
    pub weight: LayerWeight,
    /// `[r, in]`.
    pub a: HostTensor,
    /// `[out, r]`, rows in the model's (GGUF) order: q/k rows already permuted for its RoPE.
    pub b: HostTensor,
}

/// An adapter's factors on the model's device.
#[derive(Debug)]
pub struct LoraWeights {
    /// `alpha / r` (or `alpha / sqrt(r)` for rsLoRA).
    scale: f32,
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`); none at inference.
    dropout: Dropout,
    factors: HashMap<(usize, LayerWeight), Factors>,
}

/// Dropout on each adapted projection's input: the rate, and the seed every mask of one forward
/// pass derives from. The masks are a function of the seed and the projection alone, not of a
/// shared generator, so passes that run on several threads at once draw the same masks in any
/// order, and a resumed run draws the masks the uninterrupted run drew.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Dropout {
    pub rate: f32,
    pub seed: u64,
}

impl Dropout {
    /// `x` with a fraction `rate` of its entries zeroed, the rest scaled by `1 / (1 - rate)`.
    fn apply(self, x: Tensor<3>, layer: usize, weight: LayerWeight) -> Tensor<3> {
        if self.rate <= 0.0 {
            return x;
        }
        let stream = ((layer as u64) << 8 | weight as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(self.seed ^ stream);
        let (shape, keep) = (x.dims(), 1.0 / (1.0 - self.rate));
        let mask: Vec<f32> = (0..shape.iter().product())
            .map(|_| if rng.random::<f32>() < self.rate { 0.0 } else { keep })
            .collect();
        let mask = Tensor::<3>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

#[derive(Debug)]
struct Factors {
    a_t: Tensor<2>, // [in, r]
    b_t: Tensor<2>, // [r, out]
}

impl LoraWeights {
    pub fn new(scale: f32, pairs: Vec<LoraPair>, device: &Device) -> Result<Self, ModelError> {
        let mut tensors = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let (r, inp, out) = (pair.a.shape[0], pair.a.shape[1], pair.b.shape[0]);
            let a = Tensor::from_data(TensorData::new(pair.a.into_f32()?, [r, inp]), device);
            let b = Tensor::from_data(TensorData::new(pair.b.into_f32()?, [out, r]), device);
            tensors.push((pair.layer, pair.weight, a, b));
        }
        Ok(Self::from_tensors(scale, Dropout::default(), tensors))
    }

    /// Factors already on a device, e.g. trainable ones: `(layer, projection, A [r, in], B [out, r])`.
    pub fn from_tensors(
        scale: f32,
        dropout: Dropout,
        tensors: Vec<(usize, LayerWeight, Tensor<2>, Tensor<2>)>,
    ) -> Self {
        let factors = tensors
            .into_iter()
            .map(|(layer, weight, a, b)| {
                (
                    (layer, weight),
                    Factors {
                        a_t: a.transpose(),
                        b_t: b.transpose(),
                    },
                )
            })
            .collect();
        Self {
            scale,
            dropout,
            factors,
        }
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `user_scale * scale * x A^T B^T` for one projection, `x`: `[batch, seq, in]`; `None` when
    /// this adapter does not touch it. The scales multiply the rank-`r` product, a small fraction
    /// of the output's size.
    pub fn delta(&self, layer: usize, weight: LayerWeight, x: Tensor<3>, user_scale: f32) -> Option<Tensor<3>> {
        let f = self.factors.get(&(layer, weight))?;
        let x = self.dropout.apply(x, layer, weight);
        let low = burn::tensor::module::linear(x, f.a_t.clone(), None) * (self.scale * user_scale); // [batch, seq, r]
        Some(burn::tensor::module::linear(low, f.b_t.clone(), None))
    }
}

/// Adapters in use with a user scale each (1.0 = as trained).
pub type AdapterSet = Vec<(Arc<LoraWeights>, f32)>;

/// The adapters of every row of a batch; rows may differ.
#[derive(Debug, Clone, Default)]
pub struct LoraBatch {
    rows: Vec<AdapterSet>,
}

impl LoraBatch {
    /// The base model alone.
    pub fn none() -> Self {
        Self::default()
    }

    /// The same adapters for every row.
    pub fn uniform(adapters: AdapterSet) -> Self {
        Self { rows: vec![adapters] }
    }

    /// One set per row of the batch.
    pub fn per_row(rows: Vec<AdapterSet>) -> Self {
        Self { rows }
    }

    /// Whether any row carries an adapter.
    pub(crate) fn has_adapters(&self) -> bool {
        self.rows.iter().any(|set| !set.is_empty())
    }

    /// The summed delta of every adapter of every row for one projection, `x`: `[batch, seq, in]`.
    pub(crate) fn delta(&self, layer: usize, weight: LayerWeight, x: &Tensor<3>) -> Option<Tensor<3>> {
        let set_delta = |set: &AdapterSet, x: Tensor<3>| {
            set.iter()
                .filter_map(|(w, user_scale)| w.delta(layer, weight, x.clone(), *user_scale))
                .reduce(|a, b| a + b)
        };
        match self.rows.as_slice() {
            [] => None,
            [set] => set_delta(set, x.clone()),
            rows => {
                let [_, seq, _] = x.dims();
                let parts: Vec<Option<Tensor<3>>> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, set)| set_delta(set, x.clone().slice(s![i..i + 1, .., ..])))
                    .collect();
                let out_dim = parts.iter().flatten().next()?.dims()[2];
                let rows = parts
                    .into_iter()
                    .map(|p| p.unwrap_or_else(|| Tensor::zeros([1, seq, out_dim], &x.device())))
                    .collect();
                Some(Tensor::cat(rows, 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(dropout: Dropout, layer: usize, weight: LayerWeight) -> Vec<f32> {
        let x = Tensor::<3>::ones([2, 50, 100], &Device::flex());
        dropout
            .apply(x, layer, weight)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    }

    #[test]
    fn dropout_masks_are_a_function_of_seed_and_projection() {
        let d = Dropout { rate: 0.25, seed: 11 };
        let mask = masked(d, 3, LayerWeight::Q);
        assert_eq!(
            mask,
            masked(d, 3, LayerWeight::Q),
            "same seed and projection, same mask"
        );
        assert_ne!(mask, masked(d, 3, LayerWeight::K));
        assert_ne!(mask, masked(d, 4, LayerWeight::Q));
        assert_ne!(mask, masked(Dropout { seed: 12, ..d }, 3, LayerWeight::Q));
        // Kept entries are scaled so the expectation is unchanged.
        let dropped = mask.iter().filter(|&&v| v == 0.0).count() as f64 / mask.len() as f64;
        assert!((dropped - 0.25).abs() < 0.03, "dropped {dropped}");
        assert!(mask.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        assert!(
            masked(Dropout { rate: 0.0, seed: 11 }, 3, LayerWeight::Q)
                .iter()
                .all(|&v| v == 1.0)
        );
    }
}
