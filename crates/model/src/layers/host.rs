//! The CPU path of the same layers: a block's activations stay in host `Vec<f32>`s from the
//! embedding to the logits, and the per-row arithmetic (RMSNorm, RoPE, attention, SiLU gating)
//! runs as the hand loops of `airlock_kernels::ops`.
//!
//! Why hand loops: the packed matmuls already take host slices, so on the CPU each burn op around
//! them was a copy in and out of a tensor plus a dispatch and an allocation for a few hundred
//! floats; a decode step ran ~20 such ops per layer and spent more time there than in the matmuls.
//! The weights, the layer structs and the burn path (other devices, and [`crate::Llama::forward`]
//! for differentiation) are unchanged; adapters still add their deltas through burn.
//!
//! With [`Precision::Packed`] this path rounds as llama.cpp's CPU build does on x86-64: the
//! kernels round as ggml's, and attention keeps llama.cpp's f16 KV cache (the default model's
//! logits are llama.cpp's to ~1e-5, `tests/llamacpp_reference.rs`). [`Precision::F32`] keeps
//! attention in f32.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use airlock_kernels::ops::{self, AttnPrecision};

use super::{Attention, Block, Linear, LinearWeight, Mlp, Precision, RmsNorm};
use crate::{KvCache, LlamaConfig, LoraBatch, Rope};

/// What every layer of one CPU pass shares besides its input: `batch` rows of `seq` positions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostPass<'a> {
    pub config: &'a LlamaConfig,
    pub rope: &'a Rope,
    pub lora: &'a LoraBatch,
    pub precision: Precision,
    pub batch: usize,
    pub seq: usize,
}

/// Elementwise work below this many values runs on the calling thread: a rayon hand-off costs
/// more than it saves.
const PARALLEL_MIN: usize = 1 << 15;

impl Linear {
    /// `x`: `[batch * seq, in]` -> `[batch * seq, out]`, plus each row's adapter deltas.
    pub(crate) fn forward_host(&self, x: &[f32], pass: &HostPass) -> Vec<f32> {
        let rows = pass.batch * pass.seq;
        let shape = [pass.batch, pass.seq, x.len() / rows.max(1)];
        let tensor = |device: &Device| Tensor::<3>::from_data(TensorData::new(x.to_vec(), shape), device);
        let mut out = match &self.weight {
            LinearWeight::Packed(m) => m.matmul(x),
            LinearWeight::Dense(w) => burn::tensor::module::linear(tensor(&w.device()), w.clone(), None)
                .into_data()
                .try_to_vec::<f32>()
                .expect("activations are f32"),
        };
        if let Some((layer, weight)) = self.id
            && pass.lora.has_adapters()
            && let Some(delta) = pass.lora.delta(layer, weight, &tensor(&Device::flex()))
        {
            let delta = delta.into_data().try_to_vec::<f32>().expect("activations are f32");
            out.iter_mut().zip(delta).for_each(|(o, d)| *o += d);
        }
        out
    }
}

impl RmsNorm {
    /// `x`: `[rows, dim]`.
    pub(crate) fn forward_host(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        ops::rms_norm(x, &self.host_gain, self.eps, &mut out);
        out
    }
}

impl Mlp {
    /// `x`: `[rows, dim]` (normalized) -> `[rows, dim]`.
    pub(crate) fn forward_host(&self, x: &[f32], pass: &HostPass) -> Vec<f32> {
        let mut gate = self.gate.forward_host(x, pass); // [rows, ffn]
        let up = self.up.forward_host(x, pass); // [rows, ffn]
        if gate.len() < PARALLEL_MIN {
            ops::silu_mul(&mut gate, &up);
        } else {
            gate.par_chunks_mut(4096)
                .zip(up.par_chunks(4096))
                .for_each(|(g, u)| ops::silu_mul(g, u));
        }
        self.down.forward_host(&gate, pass)
    }
}

impl Attention {
    /// `x`: `[batch * seq, dim]` (normalized); row `b` continues `caches[b]` from its `len()`.
    pub(crate) fn forward_host(&self, x: &[f32], layer: usize, pass: &HostPass, caches: &mut [KvCache]) -> Vec<f32> {
        let cfg = pass.config;
        let (hd, seq) = (cfg.head_dim, pass.seq);
        let (q_dim, kv_dim) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let mut q = self.q.forward_host(x, pass); // [batch * seq, n_heads * hd]
        let mut k = self.k.forward_host(x, pass); // [batch * seq, n_kv_heads * hd]
        let mut v = self.v.forward_host(x, pass); // [batch * seq, n_kv_heads * hd]

        // The packed path computes as llama.cpp does by default: its KV cache holds f16 and its
        // attention multiplies f16 by f16, summing in f32 in an order that depends on whether
        // the pass is one token or several, so the query, keys and values are rounded to f16
        // here (the softmax weights inside `attend`). The f32 path stays exact.
        let precision = match pass.precision {
            Precision::F32 => AttnPrecision::F32,
            Precision::Packed if seq == 1 => AttnPrecision::F16Decode,
            Precision::Packed => AttnPrecision::F16Prefill,
        };
        let f16 = precision != AttnPrecision::F32;
        // RoPE at each row's own positions, then keys and values into the cache in place.
        for (b, cache) in caches.iter_mut().enumerate() {
            let (start, cap) = (cache.len(), cache.capacity());
            let (ck, cv) = cache.host_mut(layer); // [n_kv_heads, cap, hd] each
            for j in 0..seq {
                let (i, pos) = (b * seq + j, start + j);
                let qi = &mut q[i * q_dim..(i + 1) * q_dim];
                let ki = &mut k[i * kv_dim..(i + 1) * kv_dim];
                let vi = &mut v[i * kv_dim..(i + 1) * kv_dim];
                pass.rope.rotate_host(qi, pos);
                pass.rope.rotate_host(ki, pos);
                if f16 {
                    for t in [&mut *qi, &mut *ki, &mut *vi] {
                        ops::round_to_f16(t);
                    }
                }
                for g in 0..cfg.n_kv_heads {
                    let (src, dst) = (g * hd, (g * cap + pos) * hd);
                    ck[dst..dst + hd].copy_from_slice(&ki[src..src + hd]);
                    cv[dst..dst + hd].copy_from_slice(&vi[src..src + hd]);
                }
            }
        }

        // Causal attention: position `pos` of row `b` reads its cache's positions `0..=pos`;
        // query head `h` reads key/value head `h / n_rep`, as llama.cpp groups them.
        let views: Vec<(&[f32], &[f32], usize, usize)> = caches
            .iter()
            .map(|c| {
                let (k, v) = c.host(layer);
                (k, v, c.len(), c.capacity())
            })
            .collect();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0.0; q.len()]; // [batch * seq, n_heads * hd]
        // One task per position and query head.
        let head = |scratch: &mut Vec<f32>, (idx, o): (usize, &mut [f32])| {
            let (i, h) = (idx / cfg.n_heads, idx % cfg.n_heads);
            let (ck, cv, start, cap) = views[i / seq];
            let (t, g) = (start + i % seq + 1, h / cfg.n_rep());
            let kv = g * cap * hd..(g * cap + t) * hd;
            let qh = &q[i * q_dim + h * hd..i * q_dim + (h + 1) * hd];
            ops::attend(qh, &ck[kv.clone()], &cv[kv], scale, precision, scratch, o);
        };
        let work: usize = views.iter().map(|v| (v.2 + seq) * seq).sum::<usize>() * q_dim;
        if work < PARALLEL_MIN {
            let mut scratch = Vec::new();
            out.chunks_mut(hd).enumerate().for_each(|task| head(&mut scratch, task));
        } else {
            out.par_chunks_mut(hd).enumerate().for_each_init(Vec::new, head);
        }
        self.o.forward_host(&out, pass)
    }
}

impl Block {
    /// `x`: `[batch * seq, dim]`, updated in place.
    pub(crate) fn forward_host(&self, x: &mut [f32], layer: usize, pass: &HostPass, caches: &mut [KvCache]) {
        let attn = self
            .attn
            .forward_host(&self.attn_norm.forward_host(x), layer, pass, caches);
        x.iter_mut().zip(attn).for_each(|(x, a)| *x += a);
        let mlp = self.mlp.forward_host(&self.ffn_norm.forward_host(x), pass);
        x.iter_mut().zip(mlp).for_each(|(x, m)| *x += m);
    }
}
