//! The pieces of a Llama block: linear projection, RMSNorm (Zhang & Sennrich, 2019), SwiGLU
//! feed-forward (Shazeer, 2020) and grouped-query attention (Ainslie et al., 2023).

use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor, TensorData, s};

use std::sync::Arc;

use airlock_kernels::{BlockFormat, QMatrix};

use crate::load::{HostData, HostTensor};
use crate::{KvCache, LayerWeight, LlamaConfig, LoraBatch, ModelError, Rope};

mod autodiff;
mod causal;
mod host;
mod swiglu;
pub(crate) use autodiff::is_tracked_on_cpu;
pub(crate) use host::HostPass;

/// How projections hold their weights, and so how the CPU path rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The file's blocks where a CPU kernel exists, rounded as llama.cpp rounds: 8-bit
    /// activations and, on the CPU path, llama.cpp's f16 KV cache and attention operands.
    #[default]
    Packed,
    /// Everything dequantized to f32, attention in f32: exact arithmetic, for checking against
    /// f32 references.
    F32,
}

/// `y = x W^T`, no bias: the one seam through which every projection's matmul passes.
///
/// On the CPU, weights whose blocks have a kernel in `airlock-kernels` stay packed and the
/// product runs on them (8-bit activations, as llama.cpp); anything else is dequantized once and
/// multiplied by burn.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: LinearWeight,
    /// Which projection this is, for adapters; `None` for the output head.
    id: Option<(usize, LayerWeight)>,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per projection; boxing the tensor buys nothing
enum LinearWeight {
    Dense(Tensor<2>),     // [in, out], contiguous
    Packed(Arc<QMatrix>), // [out, in] in GGUF blocks
}

impl Linear {
    pub fn new(
        w: HostTensor,
        id: Option<(usize, LayerWeight)>,
        precision: Precision,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (out, inp) = (w.shape[0], w.shape[1]);
        if let Some(format) = Self::kernel_format(&w, precision, device) {
            let HostData::Packed { bytes, .. } = w.data else {
                unreachable!("kernel_format only answers for packed weights")
            };
            let matrix = QMatrix::new(format, out, inp, bytes)?;
            return Ok(Self {
                weight: LinearWeight::Packed(Arc::new(matrix)),
                id,
            });
        }
        // Stored as `[in, out]` in memory, not as a transposed view of the file's rows: burn's
        // `linear` reshapes the weight, which copies a view, and under autodiff every copy would
        // be kept for the backward pass (a second f32 base).
        let rows = w.into_f32()?;
        let mut columns = vec![0.0; rows.len()];
        for (o, row) in rows.chunks_exact(inp).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                columns[i * out + o] = v;
            }
        }
        Ok(Self {
            weight: LinearWeight::Dense(Tensor::from_data(TensorData::new(columns, [inp, out]), device)),
            id,
        })
    }

    /// `x`: `[batch, seq, in]` -> `[batch, seq, out]`, plus each row's adapter deltas.
    pub fn forward(&self, x: Tensor<3>, lora: &LoraBatch) -> Tensor<3> {
        let delta = self.id.and_then(|(layer, weight)| lora.delta(layer, weight, &x));
        let base = self.base(x);
        match delta {
            Some(d) => base + d,
            None => base,
        }
    }

    /// The kernel format `w` would be multiplied in, when it stays packed.
    pub(crate) fn kernel_format(w: &HostTensor, precision: Precision, device: &Device) -> Option<BlockFormat> {
        match &w.data {
            HostData::Packed { ggml_type, .. } if precision == Precision::Packed && *device == Device::flex() => {
                BlockFormat::from_name(ggml_type.name())
            }
            _ => None,
        }
    }

    /// The packed weights, when this projection has them.
    pub(crate) fn packed(&self) -> Option<&Arc<QMatrix>> {
        match &self.weight {
            LinearWeight::Packed(m) => Some(m),
            LinearWeight::Dense(_) => None,
        }
    }

    fn base(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.weight {
            LinearWeight::Dense(w) => burn::tensor::module::linear(x, w.clone(), None),
            LinearWeight::Packed(m) if autodiff::is_tracked_on_cpu(&x) => autodiff::linear(x, m),
            LinearWeight::Packed(m) => {
                let [b, seq, _] = x.dims();
                let device = x.device();
                let input = x.into_data().try_to_vec::<f32>().expect("activations are f32");
                Tensor::from_data(TensorData::new(m.matmul(&input), [b, seq, m.rows()]), &device)
            }
        }
    }
}

/// Root-mean-square normalization with a learned gain.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    gain: Tensor<1>,     // [dim]
    host_gain: Vec<f32>, // [dim], for the CPU path
    eps: f32,
}

impl RmsNorm {
    pub fn new(w: HostTensor, eps: f32, device: &Device) -> Result<Self, ModelError> {
        let gain = w.into_f32()?;
        let dim = gain.len();
        Ok(Self {
            gain: Tensor::from_data(TensorData::new(gain.clone(), [dim]), device),
            host_gain: gain,
            eps,
        })
    }

    /// `x`: `[batch, seq, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean_sq = x.clone().powi_scalar(2).mean_dim(2); // [batch, seq, 1]
        x * (mean_sq + self.eps).sqrt().recip() * self.gain.clone().unsqueeze::<3>()
    }
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>, lora: &LoraBatch) -> Tensor<3> {
        let (gate, up) = (self.gate.forward(x.clone(), lora), self.up.forward(x, lora));
        let hidden = match autodiff::is_tracked_on_cpu(&gate) || autodiff::is_tracked_on_cpu(&up) {
            true => swiglu::gate(gate, up),
            false => silu(gate) * up,
        };
        self.down.forward(hidden, lora)
    }
}

/// Causal self-attention with `n_kv_heads` key/value heads shared by groups of query heads.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

impl Attention {
    /// `x`: `[batch, seq, dim]`; row `i` sits at positions `caches[i].len()..` of its own cache.
    pub fn forward(&self, x: Tensor<3>, layer: usize, pass: &Pass, caches: &mut [KvCache]) -> Tensor<3> {
        let (cfg, lora) = (pass.config, pass.lora);
        let [b, len, _] = x.dims();
        let hd = cfg.head_dim;
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, len, n, hd]).swap_dims(1, 2); // [b, n, len, hd]
        let q = heads(self.q.forward(x.clone(), lora), cfg.n_heads);
        let k = heads(self.k.forward(x.clone(), lora), cfg.n_kv_heads);
        let v = heads(self.v.forward(x, lora), cfg.n_kv_heads);
        let out = if b == 1 {
            attend(q, k, v, layer, pass, &mut caches[0])
        } else {
            let row = |t: &Tensor<4>, i: usize| t.clone().slice(s![i..i + 1, .., .., ..]);
            let rows = (0..b)
                .map(|i| attend(row(&q, i), row(&k, i), row(&v, i), layer, pass, &mut caches[i]))
                .collect();
            Tensor::cat(rows, 0)
        }; // [b, n_heads, len, hd]
        self.o
            .forward(out.swap_dims(1, 2).reshape([b, len, cfg.n_heads * hd]), lora)
    }
}

/// One sequence's attention: RoPE at its own positions, its cache, causal softmax.
/// `q`: `[1, n_heads, len, hd]`, `k`, `v`: `[1, n_kv_heads, len, hd]`.
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, layer: usize, pass: &Pass, cache: &mut KvCache) -> Tensor<4> {
    let cfg = pass.config;
    let (start, hd) = (cache.len(), cfg.head_dim);
    let q = pass.rope.apply(q, start);
    let k = pass.rope.apply(k, start);
    let (k_all, v_all) = cache.append(layer, k.clone(), v.clone()); // [1, n_kv, total, hd]
    if start == 0 && autodiff::is_tracked_on_cpu(&q) {
        // Training: a sequence with no past, whose own keys and values are all there are;
        // attention is differentiated as one op.
        return causal::attention(q, k, v);
    }
    let total = k_all.dims()[2];
    // Query head h reads key/value head h / n_rep, as llama.cpp groups them.
    let share = |t: Tensor<4>| {
        t.unsqueeze_dim::<5>(2)
            .expand([1, cfg.n_kv_heads, cfg.n_rep(), total, hd])
            .reshape([1, cfg.n_heads, total, hd])
    };
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    attention(q, share(k_all), share(v_all), None, None, options)
}

/// One transformer block: pre-norm attention and pre-norm SwiGLU, each with a residual.
#[derive(Debug, Clone)]
pub struct Block {
    pub attn_norm: RmsNorm,
    pub attn: Attention,
    pub ffn_norm: RmsNorm,
    pub mlp: Mlp,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>, layer: usize, pass: &Pass, caches: &mut [KvCache]) -> Tensor<3> {
        let h = x.clone() + self.attn.forward(self.attn_norm.forward(x), layer, pass, caches);
        h.clone() + self.mlp.forward(self.ffn_norm.forward(h), pass.lora)
    }
}

/// What every layer of one forward pass shares besides its input.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    pub config: &'a LlamaConfig,
    pub rope: &'a Rope,
    pub lora: &'a LoraBatch,
}
