//! The key/value cache: per-sequence state kept apart from the weights, so one model can serve
//! many sequences at once.
//!
//! On the CPU the cache is a plain host buffer per layer, preallocated for its capacity: the CPU
//! path writes each new position in place and attention reads the filled prefix where it lies,
//! so no step copies the cache. On other devices it is a pair of preallocated tensors.

use burn::tensor::{Device, Tensor, TensorData, s};

use crate::LlamaConfig;

/// Keys and values of every layer for one sequence. A batch holds one cache per row, so rows
/// sit at different positions (continuous batching).
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// Positions already filled.
    len: usize,
    capacity: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per layer; boxing the tensors buys nothing
enum LayerCache {
    /// On the CPU.
    Host {
        k: Vec<f32>, // [n_kv_heads, capacity, head_dim]
        v: Vec<f32>, // [n_kv_heads, capacity, head_dim]
    },
    /// On any other device.
    Tensors {
        k: Tensor<4>, // [1, n_kv_heads, capacity, head_dim]
        v: Tensor<4>, // [1, n_kv_heads, capacity, head_dim]
    },
}

impl KvCache {
    /// Preallocates room for `capacity` positions.
    pub fn new(config: &LlamaConfig, capacity: usize, device: &Device) -> Self {
        let (n_kv_heads, head_dim) = (config.n_kv_heads, config.head_dim);
        let host = *device == Device::flex();
        let layers = (0..config.n_layers)
            .map(|_| {
                if host {
                    // Zeroed pages are only touched as positions fill.
                    let size = n_kv_heads * capacity * head_dim;
                    LayerCache::Host {
                        k: vec![0.0; size],
                        v: vec![0.0; size],
                    }
                } else {
                    let shape = [1, n_kv_heads, capacity, head_dim];
                    LayerCache::Tensors {
                        k: Tensor::zeros(shape, device),
                        v: Tensor::zeros(shape, device),
                    }
                }
            })
            .collect();
        Self {
            layers,
            len: 0,
            capacity,
            n_kv_heads,
            head_dim,
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
    ///
    /// The new positions are returned as the tensors given (not read back), so gradients flow
    /// through them when the network is differentiated.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let seq = k.dims()[2];
        let (start, end) = (self.len, self.len + seq);
        let (heads, hd, cap) = (self.n_kv_heads, self.head_dim, self.capacity);
        match &mut self.layers[layer] {
            LayerCache::Tensors { k: ck, v: cv } => {
                ck.inplace(|t| t.slice_assign(s![.., .., start..end, ..], k));
                cv.inplace(|t| t.slice_assign(s![.., .., start..end, ..], v));
                (
                    ck.clone().slice(s![.., .., 0..end, ..]),
                    cv.clone().slice(s![.., .., 0..end, ..]),
                )
            }
            LayerCache::Host { k: hk, v: hv } => {
                let both = [(hk, k), (hv, v)].map(|(host, new)| {
                    let values = new.to_data().try_to_vec::<f32>().expect("keys and values are f32");
                    for h in 0..heads {
                        let at = (h * cap + start) * hd;
                        host[at..at + seq * hd].copy_from_slice(&values[h * seq * hd..(h + 1) * seq * hd]);
                    }
                    if start == 0 {
                        return new;
                    }
                    let past: Vec<f32> = (0..heads)
                        .flat_map(|h| &host[h * cap * hd..(h * cap + start) * hd])
                        .copied()
                        .collect();
                    let past = Tensor::from_data(TensorData::new(past, [1, heads, start, hd]), &new.device());
                    Tensor::cat(vec![past, new], 2)
                });
                let [k, v] = both;
                (k, v)
            }
        }
    }

    /// Layer `layer`'s host buffers, `[n_kv_heads, capacity, head_dim]` each, for the CPU path.
    ///
    /// # Panics
    /// If the cache was made for a device other than the CPU.
    pub(crate) fn host_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        match &mut self.layers[layer] {
            LayerCache::Host { k, v } => (k, v),
            LayerCache::Tensors { .. } => panic!("the CPU path needs a cache made for the CPU"),
        }
    }

    /// Layer `layer`'s host buffers, read-only.
    ///
    /// # Panics
    /// If the cache was made for a device other than the CPU.
    pub(crate) fn host(&self, layer: usize) -> (&[f32], &[f32]) {
        match &self.layers[layer] {
            LayerCache::Host { k, v } => (k, v),
            LayerCache::Tensors { .. } => panic!("the CPU path needs a cache made for the CPU"),
        }
    }

    /// Marks `seq` more positions as filled, after every layer appended them.
    pub(crate) fn advance(&mut self, seq: usize) {
        self.len += seq;
    }
}
