//! Adapters handed to llama.cpp: the GGUF LoRA file holds llama.cpp's names, dims and alpha,
//! and a merged model computes what the base plus the adapter computes (tiny model in code).
#![allow(clippy::unwrap_used)] // a test fails loudly on any error

use std::sync::Arc;

use airlock_adapter::{Adapter, LoraConfig, export_gguf, merge_into_gguf};
use airlock_gguf::{GgmlType, GgufFile};
use airlock_model::tiny::{random_weights, write_gguf};
use airlock_model::{Device, GgufSource, HostTensor, LayerWeight, Llama, LoraBatch, LoraPair, WeightName};

const RANK: usize = 4;

/// An adapter on every projection of the tiny model with non-zero, deterministic factors.
fn adapter(model: &Llama, use_rslora: bool) -> Adapter {
    let config = model.config();
    let wave = |n: usize, seed: usize| (0..n).map(|i| ((i * 7 + seed * 13) as f32).sin() * 0.3).collect();
    let mut pairs = Vec::new();
    for layer in 0..config.n_layers {
        for (k, &weight) in LayerWeight::PROJECTIONS.iter().enumerate() {
            let [out, inp] = config.projection_shape(weight);
            let seed = layer * 10 + k;
            pairs.push(LoraPair {
                layer,
                weight,
                a: HostTensor::f32(vec![RANK, inp], wave(RANK * inp, seed)),
                b: HostTensor::f32(vec![out, RANK], wave(out * RANK, seed + 100)),
            });
        }
    }
    Adapter {
        config: LoraConfig {
            r: RANK,
            alpha: 8.0,
            dropout: 0.0,
            targets: LayerWeight::PROJECTIONS.to_vec(),
            use_rslora,
            base_model: None,
        },
        pairs,
        sha256: String::new(),
        size: 0,
    }
}

fn tiny_model(dir: &std::path::Path) -> (std::path::PathBuf, Llama) {
    let path = write_gguf(dir, &random_weights(false)).expect("tiny gguf");
    let model = Llama::load(&GgufSource::open(&path).expect("opens"), &Device::flex()).expect("loads");
    (path, model)
}

#[test]
fn merged_model_computes_what_the_base_plus_the_adapter_computes() {
    let dir = tempfile::tempdir().unwrap();
    let (base_path, base) = tiny_model(dir.path());
    let adapter = adapter(&base, false);
    let merged_path = dir.path().join("merged.gguf");
    let base_file = GgufFile::open(&base_path).unwrap();
    merge_into_gguf(&base_file, &adapter, 0.5, GgmlType::F32, &merged_path).unwrap();
    let merged = Llama::load(&GgufSource::open(&merged_path).unwrap(), &Device::flex()).unwrap();

    let tokens = [3, 17, 42, 8, 25, 11];
    let lora = LoraBatch::uniform(vec![(Arc::new(adapter.to_weights(&Device::flex()).unwrap()), 0.5)]);
    let expected = base.next_logits_with(&tokens, &mut base.new_cache(16), &lora);
    let got = merged.next_logits(&tokens, &mut merged.new_cache(16));
    let unadapted = base.next_logits(&tokens, &mut base.new_cache(16));
    let diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff(&expected, &unadapted) > 0.1, "the adapter must change the logits");
    assert!(
        diff(&expected, &got) < 1e-3,
        "merged differs by {}",
        diff(&expected, &got)
    );
}

#[test]
fn gguf_lora_has_llama_cpp_names_dims_and_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let (_, base) = tiny_model(dir.path());
    let adapter = adapter(&base, true);
    let path = dir.path().join("lora.gguf");
    export_gguf(&adapter, "llama", &path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.get_str("general.type").unwrap(), "adapter");
    assert_eq!(file.get_str("adapter.type").unwrap(), "lora");
    assert_eq!(file.architecture().unwrap(), "llama");
    // llama.cpp scales by alpha / r: rsLoRA's alpha / sqrt(r) must come out of that.
    let alpha = file.get_f32("adapter.lora.alpha").unwrap();
    assert!((alpha / RANK as f32 - 8.0 / (RANK as f32).sqrt()).abs() < 1e-6);
    assert_eq!(file.tensors.len(), 2 * adapter.pairs.len());
    for pair in &adapter.pairs {
        let name = WeightName::Layer(pair.layer, pair.weight).gguf();
        let a = file.tensor(&format!("{name}.lora_a")).expect("lora_a");
        let b = file.tensor(&format!("{name}.lora_b")).expect("lora_b");
        let (out, inp) = (pair.b.shape[0] as u64, pair.a.shape[1] as u64);
        assert_eq!(
            a.dims,
            vec![inp, RANK as u64],
            "{name}: lora_a is [in, r] in GGUF order"
        );
        assert_eq!(
            b.dims,
            vec![RANK as u64, out],
            "{name}: lora_b is [r, out] in GGUF order"
        );
        assert_eq!(file.dequantize(&b.name).unwrap(), pair.b.clone().into_f32().unwrap());
    }
}
