//! The Llama network (Touvron et al., 2023): token embedding, `n_layers` pre-norm blocks, final
//! RMSNorm and output projection (tied to the embedding when the checkpoint has none).

//!
//! Two paths run the same layers. On the CPU, inference ([`Llama::step`], [`Llama::next_logits`])
//! keeps activations in host buffers from the embedding to the logits (`layers/host.rs`), since
//! the packed matmuls work on host memory anyway. [`Llama::forward`] is the burn graph, for other
//! devices and for differentiation; on other devices inference runs it too.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};

use airlock_gguf::GgmlType;
use airlock_kernels::QMatrix;

use crate::layers::{Attention, Block, HostPass, Linear, Mlp, Pass, Precision, RmsNorm};
use crate::load::{HostData, HostTensor, WeightSource};
use crate::{KvCache, LayerWeight, LlamaConfig, LoraBatch, ModelError, Rope, WeightName};

#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    embedding: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    /// The embedding's rows when tied.
    output: Linear,
    rope: Rope,
    /// How projections hold their weights, and so which numerics the CPU path follows.
    precision: Precision,
    device: Device,
}

impl Llama {
    /// Builds the network from any weight source, checking every tensor's shape.
    pub fn load(source: &dyn WeightSource, device: &Device) -> Result<Self, ModelError> {
        Self::load_with(source, device, Precision::Packed)
    }

    /// [`Llama::load`] with a choice of how projections hold their weights.
    pub fn load_with(source: &dyn WeightSource, device: &Device, precision: Precision) -> Result<Self, ModelError> {
        let cfg = source.config().clone();
        let dim = cfg.dim;
        let get = |name: WeightName, shape: &[usize]| -> Result<HostTensor, ModelError> {
            source
                .load(name)?
                .ok_or_else(|| ModelError::MissingTensor(format!("{name:?}")))?
                .expect_shape(name, shape)
        };
        let linear = |i: usize, w: LayerWeight| {
            let name = WeightName::Layer(i, w);
            Linear::new(get(name, &cfg.projection_shape(w))?, Some((i, w)), precision, device)
        };
        let norm = |name| RmsNorm::new(get(name, &[dim])?, cfg.rms_eps, device);
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let l = |w| WeightName::Layer(i, w);
            blocks.push(Block {
                attn_norm: norm(l(LayerWeight::AttnNorm))?,
                attn: Attention {
                    q: linear(i, LayerWeight::Q)?,
                    k: linear(i, LayerWeight::K)?,
                    v: linear(i, LayerWeight::V)?,
                    o: linear(i, LayerWeight::O)?,
                },
                ffn_norm: norm(l(LayerWeight::FfnNorm))?,
                mlp: Mlp {
                    gate: linear(i, LayerWeight::Gate)?,
                    up: linear(i, LayerWeight::Up)?,
                    down: linear(i, LayerWeight::Down)?,
                },
            });
        }
        let emb = get(WeightName::Embedding, &[cfg.vocab_size, dim])?;
        // Tied: the output projection multiplies by the embedding's own (packed) rows, and on the
        // CPU the embedding looks its rows up in that same matrix (no second copy).
        let (output, embedding) = match source.load(WeightName::Output)? {
            Some(w) => {
                let w = w.expect_shape(WeightName::Output, &[cfg.vocab_size, dim])?;
                (Linear::new(w, None, precision, device)?, Embedding::new(emb, device)?)
            }
            None if *device == Device::flex() && Linear::kernel_format(&emb, precision, device).is_some() => {
                let HostData::Packed { ggml_type, .. } = emb.data else {
                    unreachable!("kernel formats are packed")
                };
                let output = Linear::new(emb, None, precision, device)?;
                let matrix = output.packed().expect("kernel formats stay packed").clone();
                (output, Embedding::Shared { ggml_type, matrix })
            }
            None => (
                Linear::new(emb.clone(), None, precision, device)?,
                Embedding::new(emb, device)?,
            ),
        };
        Ok(Self {
            norm: norm(WeightName::OutputNorm)?,
            rope: Rope::new(cfg.head_dim, cfg.rope_base, cfg.context_length, device),
            blocks,
            embedding,
            output,
            config: cfg,
            precision,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A cache for one sequence of up to `capacity` positions (clamped to the context).
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(&self.config, capacity.min(self.rope.max_len()), &self.device)
    }

    /// Runs `tokens` (`[batch, seq]`) through every block and the final norm; row `i` continues
    /// the sequence in `caches[i]` with its own adapters. Returns the hidden states
    /// `[batch, seq, dim]` and advances every cache by `seq`.
    pub fn forward(&self, tokens: Tensor<2, Int>, caches: &mut [KvCache], lora: &LoraBatch) -> Tensor<3> {
        let [batch, seq] = tokens.dims();
        assert_eq!(caches.len(), batch, "one cache per row");
        for cache in caches.iter() {
            assert!(
                cache.len() + seq <= cache.capacity(),
                "KV cache overflow: the caller checks the context"
            );
        }
        let mut x = match &self.embedding {
            Embedding::Tensor(table) => burn::tensor::module::embedding(table.clone(), tokens),
            rows => {
                let ids = tokens
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .expect("token ids");
                let ids: Vec<u32> = ids.iter().map(|&t| t as u32).collect();
                let data = TensorData::new(rows.lookup(&ids, self.config.dim), [batch, seq, self.config.dim]);
                Tensor::from_data(data, &self.device)
            }
        };
        let pass = Pass {
            config: &self.config,
            rope: &self.rope,
            lora,
        };
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, i, &pass, caches);
        }
        for cache in caches.iter_mut() {
            cache.advance(seq);
        }
        self.norm.forward(x)
    }

    /// One decoding step for a batch: row `i` feeds `tokens[i]` to `caches[i]`; returns each
    /// row's logits. Rows share every base matmul, so the weights are read once for the batch.
    pub fn step(&self, tokens: &[u32], caches: &mut [KvCache], lora: &LoraBatch) -> Vec<Vec<f32>> {
        if self.on_host() {
            return on_pool(|| {
                let hidden = self.hidden_host(tokens, tokens.len(), caches, lora);
                let logits = self
                    .output
                    .forward_host(&hidden, &self.host_pass(lora, tokens.len(), 1));
                logits.chunks(self.config.vocab_size).map(<[f32]>::to_vec).collect()
            });
        }
        let input = self.token_tensor(tokens, [tokens.len(), 1]);
        let logits = self.logits(self.forward(input, caches, lora));
        let flat = logits.into_data().try_to_vec::<f32>().expect("logits are f32");
        flat.chunks(self.config.vocab_size).map(<[f32]>::to_vec).collect()
    }

    fn token_tensor(&self, tokens: &[u32], shape: [usize; 2]) -> Tensor<2, Int> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        Tensor::from_data(TensorData::new(ids, shape), &self.device)
    }

    /// Projects hidden states `[batch, seq, dim]` to logits `[batch, seq, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.output.forward(hidden, &LoraBatch::none())
    }

    /// Feeds one sequence's `tokens` and returns the logits at its last position.
    pub fn next_logits(&self, tokens: &[u32], cache: &mut KvCache) -> Vec<f32> {
        self.next_logits_with(tokens, cache, &LoraBatch::none())
    }

    /// [`Llama::next_logits`] with adapters.
    pub fn next_logits_with(&self, tokens: &[u32], cache: &mut KvCache, lora: &LoraBatch) -> Vec<f32> {
        if self.on_host() {
            return on_pool(|| {
                let hidden = self.hidden_host(tokens, 1, std::slice::from_mut(cache), lora);
                let last = &hidden[hidden.len() - self.config.dim..];
                self.output.forward_host(last, &self.host_pass(lora, 1, 1))
            });
        }
        let input = self.token_tensor(tokens, [1, tokens.len()]);
        let hidden = self.forward(input, std::slice::from_mut(cache), lora);
        let [_, seq, dim] = hidden.dims();
        let last = hidden
            .slice(burn::tensor::s![.., seq - 1..seq, ..])
            .reshape([1, 1, dim]);
        self.logits(last)
            .into_data()
            .try_to_vec::<f32>()
            .expect("logits are f32")
    }
}

/// Runs `f` on a thread of the rayon pool. Every matmul and attention inside then forks from a
/// pool thread, whose sibling is still spinning from the last op; called from outside the pool,
/// each of a decode step's ~150 parallel ops would instead wake the pool and put the caller to
/// sleep until it finished.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// The CPU path.
impl Llama {
    /// Whether inference runs on host buffers (see the module doc).
    fn on_host(&self) -> bool {
        !matches!(self.embedding, Embedding::Tensor(_))
    }

    fn host_pass<'a>(&'a self, lora: &'a LoraBatch, batch: usize, seq: usize) -> HostPass<'a> {
        HostPass {
            config: &self.config,
            rope: &self.rope,
            lora,
            precision: self.precision,
            batch,
            seq,
        }
    }

    /// [`Llama::forward`] on host buffers: `tokens` is `[batch, seq]` row-major; returns the
    /// normalized hidden states `[batch * seq, dim]` and advances every cache by `seq`.
    fn hidden_host(&self, tokens: &[u32], batch: usize, caches: &mut [KvCache], lora: &LoraBatch) -> Vec<f32> {
        let seq = tokens.len() / batch.max(1);
        assert_eq!(caches.len(), batch, "one cache per row");
        for cache in caches.iter() {
            assert!(
                cache.len() + seq <= cache.capacity(),
                "KV cache overflow: the caller checks the context"
            );
        }
        let pass = self.host_pass(lora, batch, seq);
        let mut x = self.embedding.lookup(tokens, self.config.dim); // [batch * seq, dim]
        for (i, block) in self.blocks.iter().enumerate() {
            block.forward_host(&mut x, i, &pass, caches);
        }
        for cache in caches.iter_mut() {
            cache.advance(seq);
        }
        self.norm.forward_host(&x)
    }
}

/// The token embedding table, `[vocab, dim]`.
///
/// On the CPU it stays in the file's blocks and each looked-up row is dequantized, as llama.cpp
/// does: SmolLM2's Q8_0 table is 30 MB packed and would be 113 MB in f32. When the output
/// projection is tied to it, both read the same packed matrix.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per model
enum Embedding {
    /// On devices other than the CPU.
    Tensor(Tensor<2>),
    /// On the CPU, dense or packed.
    Host(HostTensor),
    /// On the CPU, the tied output projection's packed rows.
    Shared { ggml_type: GgmlType, matrix: Arc<QMatrix> },
}

impl Embedding {
    fn new(table: HostTensor, device: &Device) -> Result<Self, ModelError> {
        let [vocab, dim] = [table.shape[0], table.shape[1]];
        if *device != Device::flex() {
            let values = table.into_f32()?;
            return Ok(Self::Tensor(Tensor::from_data(
                TensorData::new(values, [vocab, dim]),
                device,
            )));
        }
        if let HostData::Packed { ggml_type, bytes } = &table.data
            && ggml_type.row_bytes(dim)? * vocab != bytes.len()
        {
            // Each row must be whole blocks for a row to be dequantized alone.
            return Err(ModelError::BadConfig("token embedding rows are not whole blocks"));
        }
        Ok(Self::Host(table))
    }

    /// The rows of `tokens`, `[tokens.len(), dim]`, from a host table.
    fn lookup(&self, tokens: &[u32], dim: usize) -> Vec<f32> {
        let mut out = vec![0.0; tokens.len() * dim];
        for (&t, row) in tokens.iter().zip(out.chunks_exact_mut(dim)) {
            let t = t as usize;
            let (ggml_type, bytes) = match self {
                Self::Tensor(_) => unreachable!("host lookups only on the CPU"),
                Self::Host(HostTensor {
                    data: HostData::F32(values),
                    ..
                }) => {
                    row.copy_from_slice(&values[t * dim..(t + 1) * dim]);
                    continue;
                }
                Self::Host(HostTensor {
                    data: HostData::Packed { ggml_type, bytes },
                    ..
                }) => (*ggml_type, bytes.as_slice()),
                Self::Shared { ggml_type, matrix } => (*ggml_type, matrix.data()),
            };
            let row_bytes = ggml_type
                .row_bytes(dim)
                .expect("rows were checked to be whole blocks at load");
            airlock_gguf::dequantize(ggml_type, &bytes[t * row_bytes..(t + 1) * row_bytes], row)
                .expect("rows were checked to be whole blocks at load");
        }
        out
    }
}
