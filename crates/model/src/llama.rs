//! The Llama network (Touvron et al., 2023): token embedding, `n_layers` pre-norm blocks, final
//! RMSNorm and output projection (tied to the embedding when the checkpoint has none).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::layers::{Attention, Block, Linear, Mlp, Pass, Precision, RmsNorm};
use crate::load::{HostTensor, WeightSource};
use crate::{KvCache, LayerWeight, LlamaConfig, LoraBatch, ModelError, Rope, WeightName};

#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    embedding: Tensor<2>, // [vocab, dim]
    blocks: Vec<Block>,
    norm: RmsNorm,
    /// The embedding's rows when tied.
    output: Linear,
    rope: Rope,
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
        // Tied: the output projection multiplies by the embedding's own (packed) rows.
        let output = match source.load(WeightName::Output)? {
            Some(w) => Linear::new(
                w.expect_shape(WeightName::Output, &[cfg.vocab_size, dim])?,
                None,
                precision,
                device,
            )?,
            None => Linear::new(emb.clone(), None, precision, device)?,
        };
        let embedding = Tensor::from_data(TensorData::new(emb.into_f32()?, [cfg.vocab_size, dim]), device);
        Ok(Self {
            norm: norm(WeightName::OutputNorm)?,
            rope: Rope::new(cfg.head_dim, cfg.rope_base, cfg.context_length, device),
            blocks,
            embedding,
            output,
            config: cfg,
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
        let mut x = burn::tensor::module::embedding(self.embedding.clone(), tokens);
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
