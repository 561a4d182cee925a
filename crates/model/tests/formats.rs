//! A tiny random Llama, built here and written both as GGUF (llama.cpp's layout, q/k rows
//! permuted for its RoPE) and as a Hugging Face safetensors checkpoint, gives the same logits
//! from either file: the two name tables and the RoPE permutation agree.

use airlock_gguf::GgufWriter;
use airlock_model::tiny::{DIM, FFN, HEAD_DIM, HEADS, KV_HEADS, LAYERS, VOCAB, random_weights, write_gguf};
use airlock_model::{
    GgufSource, KvCache, LayerWeight, Llama, Precision, SafetensorsSource, WeightName, default_device,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Undoes llama.cpp's q/k row permutation: GGUF row `2i + j` of a head is HF row `j * d/2 + i`.
fn to_hf_rows(data: &[f32], heads: usize) -> Vec<f32> {
    let half = HEAD_DIM / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = (h * HEAD_DIM + 2 * i + j) * DIM;
                let dst = (h * HEAD_DIM + j * half + i) * DIM;
                out[dst..dst + DIM].copy_from_slice(&data[src..src + DIM]);
            }
        }
    }
    out
}

fn write_safetensors(dir: &std::path::Path, weights: &[(WeightName, Vec<usize>, Vec<f32>)], tied: bool) {
    let mut bytes = Vec::new();
    for (name, shape, data) in weights {
        let data = match name {
            WeightName::Layer(_, LayerWeight::Q) => to_hf_rows(data, HEADS),
            WeightName::Layer(_, LayerWeight::K) => to_hf_rows(data, KV_HEADS),
            _ => data.clone(),
        };
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name.hf(), shape.clone(), raw));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).expect("safetensors written");
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": DIM, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 64, "tie_word_embeddings": tied,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config written");
}

fn logits_of(model: &Llama) -> Vec<f32> {
    let mut cache: KvCache = model.new_cache(16);
    // A prompt pass, then two single-token steps through the cache.
    let mut all = model.next_logits(&[3, 17, 5, 41, 8], &mut cache);
    all.extend(model.next_logits(&[22], &mut cache));
    all.extend(model.next_logits(&[0], &mut cache));
    all
}

/// The largest elementwise difference between two equally long vectors.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

fn same_logits_from_both_files(tied: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = random_weights(tied);
    let gguf = write_gguf(dir.path(), &weights).expect("gguf written");
    write_safetensors(dir.path(), &weights, tied);
    let device = default_device();
    let from_gguf = Llama::load(&GgufSource::open(&gguf).expect("gguf"), &device).expect("load gguf");
    let from_hf = Llama::load(&SafetensorsSource::open(dir.path()).expect("hf"), &device).expect("load hf");
    assert_eq!(from_gguf.config(), from_hf.config());
    let (a, b) = (logits_of(&from_gguf), logits_of(&from_hf));
    assert_eq!(a.len(), 3 * VOCAB);
    let max_diff = max_abs_diff(&a, &b);
    assert!(max_diff < 1e-4, "logits differ by {max_diff}");
    assert!(a.iter().any(|v| v.abs() > 0.1), "logits are not trivially zero");
}

#[test]
fn tiny_llama_gives_the_same_logits_from_gguf_and_safetensors() {
    same_logits_from_both_files(false);
}

#[test]
fn tiny_llama_with_tied_embeddings_gives_the_same_logits_from_both_files() {
    same_logits_from_both_files(true);
}

#[test]
fn prefill_and_step_by_step_decoding_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = write_gguf(dir.path(), &random_weights(false)).expect("gguf written");
    let model = Llama::load(&GgufSource::open(&gguf).expect("gguf"), &default_device()).expect("load");
    let prompt = [3u32, 17, 5, 41, 8];
    let mut batch_cache = model.new_cache(8);
    let at_once = model.next_logits(&prompt, &mut batch_cache);
    let mut step_cache = model.new_cache(8);
    let mut one_by_one = Vec::new();
    for &t in &prompt {
        one_by_one = model.next_logits(&[t], &mut step_cache);
    }
    let max_diff = max_abs_diff(&at_once, &one_by_one);
    assert!(
        max_diff < 1e-4,
        "causal prefill differs from incremental decoding by {max_diff}"
    );
}

#[test]
fn unsupported_architecture_is_named_in_the_error() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "mamba");
    let file = airlock_gguf::GgufFile::from_bytes(w.to_bytes().expect("bytes")).expect("parses");
    let err = GgufSource::new(file).err().expect("rejected").to_string();
    assert!(err.contains("mamba"), "{err}");
}

/// Random low-rank factors for every projection of the tiny model.
fn random_adapter(seed: u64) -> airlock_model::LoraWeights {
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg_heads = [
        (LayerWeight::Q, HEADS * HEAD_DIM, DIM),
        (LayerWeight::V, KV_HEADS * HEAD_DIM, DIM),
        (LayerWeight::Down, DIM, FFN),
    ];
    let mut pairs = Vec::new();
    for layer in 0..LAYERS {
        for (weight, out, inp) in cfg_heads {
            let mut t = |shape: Vec<usize>| {
                let n = shape.iter().product();
                airlock_model::HostTensor::f32(shape, (0..n).map(|_| rng.random_range(-0.3f32..0.3)).collect())
            };
            pairs.push(airlock_model::LoraPair {
                layer,
                weight,
                a: t(vec![4, inp]),
                b: t(vec![out, 4]),
            });
        }
    }
    airlock_model::LoraWeights::new(2.0, pairs, &default_device()).expect("adapter")
}

#[test]
fn a_batch_with_different_adapters_and_positions_per_row_equals_each_row_alone() {
    use airlock_model::LoraBatch;
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = write_gguf(dir.path(), &random_weights(false)).expect("gguf written");
    let model = Llama::load(&GgufSource::open(&gguf).expect("gguf"), &default_device()).expect("load");
    let adapter = Arc::new(random_adapter(7));
    let sets = [
        vec![],
        vec![(Arc::clone(&adapter), 1.0)],
        vec![(Arc::clone(&adapter), 0.5)],
    ];
    let prompts: [&[u32]; 3] = [&[3, 17, 5], &[9, 1, 2, 3, 4], &[30]];
    // Each row alone.
    let alone: Vec<Vec<f32>> = prompts
        .iter()
        .zip(&sets)
        .map(|(p, set)| {
            let lora = LoraBatch::uniform(set.clone());
            let mut cache = model.new_cache(16);
            model.next_logits_with(p, &mut cache, &lora);
            model.next_logits_with(&[11], &mut cache, &lora)
        })
        .collect();
    // Prompts one by one, then one shared step for the three rows.
    let mut caches: Vec<KvCache> = prompts
        .iter()
        .zip(&sets)
        .map(|(p, set)| {
            let mut cache = model.new_cache(16);
            model.next_logits_with(p, &mut cache, &LoraBatch::uniform(set.clone()));
            cache
        })
        .collect();
    let batched = model.step(&[11, 11, 11], &mut caches, &LoraBatch::per_row(sets.to_vec()));
    for (row, (a, b)) in alone.iter().zip(&batched).enumerate() {
        let max = max_abs_diff(a, b);
        assert!(max < 1e-4, "row {row} differs by {max}");
    }
    assert!(
        alone[0].iter().zip(&alone[1]).any(|(x, y)| (x - y).abs() > 1e-2),
        "the adapter changes the logits"
    );
}

#[test]
fn cpu_inference_path_matches_the_burn_graph_through_the_cache() {
    use burn::tensor::{Int, Tensor, TensorData};
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = write_gguf(dir.path(), &random_weights(false)).expect("gguf written");
    let device = default_device();
    // The exact CPU path: the packed one rounds attention's operands to f16 as llama.cpp does.
    let model = Llama::load_with(&GgufSource::open(&gguf).expect("gguf"), &device, Precision::F32).expect("load");
    let lora = airlock_model::LoraBatch::none();
    // The burn graph (`forward`, for other devices and for training), last position's logits.
    let graph = |tokens: &[u32], cache: &mut KvCache| {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, tokens.len()]), &device);
        let logits = model.logits(model.forward(input, std::slice::from_mut(cache), &lora));
        let all = logits.into_data().try_to_vec::<f32>().expect("f32");
        all[all.len() - VOCAB..].to_vec()
    };
    let (mut host_cache, mut graph_cache) = (model.new_cache(8), model.new_cache(8));
    for step in [&[3u32, 17, 5, 41, 8][..], &[22], &[0]] {
        let host = model.next_logits(step, &mut host_cache);
        let burn = graph(step, &mut graph_cache);
        let max_diff = max_abs_diff(&host, &burn);
        assert!(max_diff < 1e-4, "CPU path and burn graph differ by {max_diff}");
    }
}

#[test]
fn packed_cpu_path_keeps_llamacpp_f16_kv_cache_and_the_f32_path_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = write_gguf(dir.path(), &random_weights(false)).expect("gguf written");
    let source = GgufSource::open(&gguf).expect("gguf");
    let device = default_device();
    let packed = logits_of(&Llama::load_with(&source, &device, Precision::Packed).expect("load"));
    let exact = logits_of(&Llama::load_with(&source, &device, Precision::F32).expect("load"));
    let max_diff = max_abs_diff(&packed, &exact);
    // The tiny model's weights are f32 (no 8-bit kernels), so the difference is the f16 cache.
    assert!(
        max_diff > 0.0,
        "the packed path should round keys, values and weights to f16"
    );
    assert!(max_diff < 1e-2, "f16 attention operands moved the logits by {max_diff}");
}
