//! A tiny random Llama written as a GGUF file: the fixture that tests in every crate build in
//! code (2 layers, width 64, 4 query / 2 key-value heads, vocabulary 50, F32 tensors).

use std::path::Path;

use airlock_gguf::{GgmlType, GgufError, GgufWriter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{LayerWeight, WeightName};

pub const LAYERS: usize = 2;
pub const DIM: usize = 64;
pub const FFN: usize = 96;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = DIM / HEADS;
pub const VOCAB: usize = 50;

/// Every tensor of the tiny model in GGUF layout, with its row-major shape (seeded, so the
/// same every time).
pub fn random_weights(tied: bool) -> Vec<(WeightName, Vec<usize>, Vec<f32>)> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut tensor = |shape: Vec<usize>, scale: f32| {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.random_range(-1.0f32..1.0) * scale).collect();
        (shape, data)
    };
    let mut all = Vec::new();
    let mut push = |name, (shape, data)| all.push((name, shape, data));
    push(WeightName::Embedding, tensor(vec![VOCAB, DIM], 1.0));
    for i in 0..LAYERS {
        let l = |w| WeightName::Layer(i, w);
        push(l(LayerWeight::AttnNorm), tensor(vec![DIM], 1.0));
        push(l(LayerWeight::Q), tensor(vec![HEADS * HEAD_DIM, DIM], 0.2));
        push(l(LayerWeight::K), tensor(vec![KV_HEADS * HEAD_DIM, DIM], 0.2));
        push(l(LayerWeight::V), tensor(vec![KV_HEADS * HEAD_DIM, DIM], 0.2));
        push(l(LayerWeight::O), tensor(vec![DIM, HEADS * HEAD_DIM], 0.2));
        push(l(LayerWeight::FfnNorm), tensor(vec![DIM], 1.0));
        push(l(LayerWeight::Gate), tensor(vec![FFN, DIM], 0.2));
        push(l(LayerWeight::Up), tensor(vec![FFN, DIM], 0.2));
        push(l(LayerWeight::Down), tensor(vec![DIM, FFN], 0.2));
    }
    push(WeightName::OutputNorm, tensor(vec![DIM], 1.0));
    if !tied {
        push(WeightName::Output, tensor(vec![VOCAB, DIM], 0.2));
    }
    all
}

/// Writes `weights` with the tiny model's metadata to `dir/tiny.gguf`.
pub fn write_gguf(dir: &Path, weights: &[(WeightName, Vec<usize>, Vec<f32>)]) -> Result<std::path::PathBuf, GgufError> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("llama.block_count", LAYERS as u32)
        .add_metadata("llama.embedding_length", DIM as u32)
        .add_metadata("llama.feed_forward_length", FFN as u32)
        .add_metadata("llama.attention.head_count", HEADS as u32)
        .add_metadata("llama.attention.head_count_kv", KV_HEADS as u32)
        .add_metadata("llama.rope.freq_base", 10000.0f32)
        .add_metadata("llama.attention.layer_norm_rms_epsilon", 1e-5f32)
        .add_metadata("llama.context_length", 64u32);
    for (name, shape, data) in weights {
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        w.add_tensor_f32(name.gguf(), &dims, GgmlType::F32, data)?;
    }
    let path = dir.join("tiny.gguf");
    w.write_to_path(&path)?;
    Ok(path)
}
