//! The key/value cache: per-sequence state kept apart from the weights, so one model can serve
//! many sequences at once.

use burn::tensor::{Device, Tensor, s};

use crate::LlamaConfig;

/// Keys and values of every layer for one sequence. A batch holds one cache per row, so rows
/// sit at different positions (continuous batching).
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// Positions already filled.
    len: usize,
    capacity: usize,
}

#[derive(Debug, Clone)]
struct LayerCache {
    k: Tensor<4>, // [1, n_kv_heads, capacity, head_dim]
    v: Tensor<4>, // [1, n_kv_heads, capacity, head_dim]
}

impl KvCache {
    /// Preallocates room for `capacity` positions.
    pub fn new(config: &LlamaConfig, capacity: usize, device: &Device) -> Self {
        let shape = [1, config.n_kv_heads, capacity, config.head_dim];
        let layers = (0..config.n_layers)
            .map(|_| LayerCache {
                k: Tensor::zeros(shape, device),
                v: Tensor::zeros(shape, device),
            })
            .collect();
        Self {
            layers,
            len: 0,
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position (the buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops positions from `len` on, e.g. to reuse a shared prompt prefix.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Writes `k`, `v` of shape `[1, n_kv_heads, seq, head_dim]` at the current end and returns
    /// every key and value so far, `[1, n_kv_heads, len + seq, head_dim]`.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let seq = k.dims()[2];
        let (start, end) = (self.len, self.len + seq);
        let cache = &mut self.layers[layer];
        cache.k.inplace(|t| t.slice_assign(s![.., .., start..end, ..], k));
        cache.v.inplace(|t| t.slice_assign(s![.., .., start..end, ..], v));
        (
            cache.k.clone().slice(s![.., .., 0..end, ..]),
            cache.v.clone().slice(s![.., .., 0..end, ..]),
        )
    }

    /// Marks `seq` more positions as filled, after every layer appended them.
    pub(crate) fn advance(&mut self, seq: usize) {
        self.len += seq;
    }
}
