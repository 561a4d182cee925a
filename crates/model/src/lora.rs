//! LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models") at inference:
//! each row of a batch may carry its own adapters, each adding `scale * x A^T B^T` to the shared
//! base projections; the base weights are never changed, so adapters load and unload freely.

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::{Device, Distribution, Tensor, TensorData, s};

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
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`); 0 at inference.
    dropout: f32,
    factors: HashMap<(usize, LayerWeight), Factors>,
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
        Ok(Self::from_tensors(scale, 0.0, tensors))
    }

    /// Factors already on a device, e.g. trainable ones: `(layer, projection, A [r, in], B [out, r])`.
    pub fn from_tensors(scale: f32, dropout: f32, tensors: Vec<(usize, LayerWeight, Tensor<2>, Tensor<2>)>) -> Self {
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

    /// `scale * x A^T B^T` for one projection, `x`: `[batch, seq, in]`; `None` when this adapter
    /// does not touch it.
    pub fn delta(&self, layer: usize, weight: LayerWeight, x: Tensor<3>) -> Option<Tensor<3>> {
        let f = self.factors.get(&(layer, weight))?;
        let x = if self.dropout > 0.0 {
            let keep = x.random_like(Distribution::Bernoulli(1.0 - self.dropout as f64));
            x * keep / (1.0 - self.dropout)
        } else {
            x
        };
        let low = burn::tensor::module::linear(x, f.a_t.clone(), None); // [batch, seq, r]
        Some(burn::tensor::module::linear(low, f.b_t.clone(), None) * self.scale)
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
                .filter_map(|(w, user_scale)| w.delta(layer, weight, x.clone()).map(|d| d * *user_scale))
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
