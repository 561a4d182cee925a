//! The trainable state: LoRA factors on the autodiff device (A from PEFT's Kaiming-uniform
//! init, B zero so step 0 is the base model exactly) and AdamW (Loshchilov & Hutter, 2019)
//! moments. AdamW is written out here because the factors are plain tensors, not a burn Module.

use std::sync::Arc;

use airlock_adapter::{Adapter, LoraConfig};
use airlock_model::{Dropout, HostTensor, LayerWeight, LlamaConfig, LoraPair, LoraWeights};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::TrainConfig;

const BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;

/// One trainable matrix and its optimizer moments.
#[derive(Debug, Clone)]
pub struct Param {
    pub value: Tensor<2>, // leaf with require_grad
    pub m: Tensor<2>,     // first moment, same shape, no autodiff
    pub v: Tensor<2>,     // second moment
}

/// Every adapted projection's A and B.
#[derive(Debug, Clone)]
pub struct LoraState {
    pub lora: LoraConfig,
    /// `(layer, projection, A, B)`.
    pub factors: Vec<(usize, LayerWeight, Param, Param)>,
    /// Optimizer steps taken.
    pub step: usize,
}

fn param(value: Tensor<2>) -> Param {
    let zeros = Tensor::zeros(value.dims(), &value.device()).inner();
    Param {
        value: value.require_grad(),
        m: zeros.clone(),
        v: zeros,
    }
}

fn host(t: &Tensor<2>) -> HostTensor {
    let [r, c] = t.dims();
    HostTensor::f32(
        vec![r, c],
        t.clone()
            .inner()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 parameters"),
    )
}

impl LoraState {
    /// Fresh factors: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's default), B = 0.
    pub fn init(model: &LlamaConfig, config: &TrainConfig, device: &Device) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut factors = Vec::new();
        for layer in 0..model.n_layers {
            if config.layers.as_ref().is_some_and(|l| !l.contains(&layer)) {
                continue;
            }
            for &w in &config.targets {
                let [out, inp] = model.projection_shape(w);
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..config.rank * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                let a = Tensor::from_data(TensorData::new(a, [config.rank, inp]), device);
                let b = Tensor::zeros([out, config.rank], device);
                factors.push((layer, w, param(a), param(b)));
            }
        }
        let lora = LoraConfig {
            r: config.rank,
            alpha: config.alpha,
            dropout: config.dropout,
            targets: config.targets.clone(),
            use_rslora: config.rslora,
            base_model: None,
        };
        Self { lora, factors, step: 0 }
    }

    /// Restores factors from a saved adapter (moments start at zero unless restored too).
    pub fn from_adapter(adapter: &Adapter, device: &Device) -> Self {
        let tensor = |t: &HostTensor| {
            let data = t.clone().into_f32().expect("adapters hold f32");
            Tensor::from_data(TensorData::new(data, [t.shape[0], t.shape[1]]), device)
        };
        let factors = adapter
            .pairs
            .iter()
            .map(|p| (p.layer, p.weight, param(tensor(&p.a)), param(tensor(&p.b))))
            .collect();
        Self {
            lora: adapter.config.clone(),
            factors,
            step: 0,
        }
    }

    /// The factors for one forward/backward pass: fresh autodiff leaves holding their values,
    /// in [`LoraState::params`] order (to read their gradients from), and the adapter built on
    /// them. Each pass gets leaves of its own because burn merges graphs that share a node into
    /// one graph under one lock: passes on several threads must not share the parameters' nodes.
    pub fn pass(&self, dropout: Dropout) -> (Arc<LoraWeights>, Vec<Tensor<2>>) {
        let leaf = |p: &Param| p.value.clone().detach().require_grad();
        let mut leaves = Vec::new();
        let tensors = self
            .factors
            .iter()
            .map(|(l, w, a, b)| {
                let (a, b) = (leaf(a), leaf(b));
                leaves.extend([a.clone(), b.clone()]);
                (*l, *w, a, b)
            })
            .collect();
        let weights = LoraWeights::from_tensors(self.lora.scale(), dropout, tensors);
        (Arc::new(weights), leaves)
    }

    /// The factors without autodiff, for validation: a forward pass through them records no
    /// graph (a tracked forward that is never differentiated would keep every activation).
    pub fn frozen_weights(&self) -> Arc<LoraWeights> {
        let tensors = self
            .factors
            .iter()
            .map(|(l, w, a, b)| (*l, *w, a.value.clone().inner(), b.value.clone().inner()))
            .collect();
        Arc::new(LoraWeights::from_tensors(
            self.lora.scale(),
            Dropout::default(),
            tensors,
        ))
    }

    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.factors.iter().flat_map(|(_, _, a, b)| [a, b])
    }

    fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.factors.iter_mut().flat_map(|(_, _, a, b)| [a, b])
    }

    /// One AdamW step from `grads` (one per parameter, in [`LoraState::params`] order), clipped
    /// to `max_norm`; returns the gradient norm before clipping.
    pub fn apply(&mut self, grads: Vec<Tensor<2>>, lr: f64, weight_decay: f64, max_norm: Option<f64>) -> f64 {
        let norm = grads
            .iter()
            .map(|g| g.clone().powi_scalar(2).sum().into_scalar::<f32>() as f64)
            .sum::<f64>()
            .sqrt();
        let clip = match max_norm {
            Some(max) if norm > max => max / (norm + 1e-6),
            _ => 1.0,
        };
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - BETAS.0.powi(t), 1.0 - BETAS.1.powi(t));
        for (p, g) in self.params_mut().zip(grads) {
            let g = g * clip;
            p.m = p.m.clone() * BETAS.0 + g.clone() * (1.0 - BETAS.0);
            p.v = p.v.clone() * BETAS.1 + g.powi_scalar(2) * (1.0 - BETAS.1);
            let update = (p.m.clone() / c1) / ((p.v.clone() / c2).sqrt() + EPS);
            let device = p.value.device(); // carries the autodiff and checkpointing settings
            let value = p.value.clone().inner();
            let value = value.clone() - (update + value * weight_decay) * lr;
            p.value = Tensor::from_data(value.into_data(), &device).require_grad();
        }
        norm
    }

    /// The factors as an adapter, for saving in PEFT's layout.
    pub fn to_adapter(&self) -> Adapter {
        let pairs = self
            .factors
            .iter()
            .map(|(layer, weight, a, b)| LoraPair {
                layer: *layer,
                weight: *weight,
                a: host(&a.value),
                b: host(&b.value),
            })
            .collect();
        Adapter {
            config: self.lora.clone(),
            pairs,
            sha256: String::new(),
            size: 0,
        }
    }

    /// Moments as host tensors, in parameter order: `(m, v)`.
    pub fn moments(&self) -> Vec<(HostTensor, HostTensor)> {
        self.params().map(|p| (host(&p.m), host(&p.v))).collect()
    }

    /// Restores moments saved by [`LoraState::moments`].
    pub fn set_moments(&mut self, moments: Vec<(HostTensor, HostTensor)>, device: &Device) {
        let tensor = |t: HostTensor| {
            let shape = [t.shape[0], t.shape[1]];
            Tensor::from_data(TensorData::new(t.into_f32().expect("f32 moments"), shape), device).inner()
        };
        for (p, (m, v)) in self.params_mut().zip(moments) {
            p.m = tensor(m);
            p.v = tensor(v);
        }
    }
}
