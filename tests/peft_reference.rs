//! PEFT adapters for the default model, loaded and applied, against what transformers + PEFT
//! compute with them (`../shared/reference/peft-lora-smollm2` and `peft-trained-smollm2`; each
//! README says how the files were made and suggests these tests).

use std::path::PathBuf;
use std::sync::Arc;

use airlock_adapter::{Adapter, AdapterError, load_peft, save_peft};
use airlock_model::{GgufSource, LayerWeight, LoraBatch, LoraWeights, WeightSource, default_device};
use airlock_tests::{default_model, default_model_path, reference_json, reference_path, token_ids};
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;

fn load(name: &str) -> Adapter {
    load_peft(&reference_path(name), default_model().0.config()).expect("adapter loads")
}

fn tensor(file: &SafeTensors, key: &str) -> Vec<f32> {
    let view = file.tensor(key).expect(key);
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0)
}

fn top(v: &[f32], n: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..v.len()).collect();
    ids.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    ids.truncate(n);
    ids
}

#[test]
fn layer0_lora_deltas_match_peft_exactly() {
    let adapter = load("peft-lora-smollm2");
    let weights = adapter.to_weights(&default_device()).expect("weights");
    let bytes = read(reference_path("peft-lora-smollm2/probe_layer0.safetensors"));
    let probe = SafeTensors::deserialize(&bytes).expect("probe");
    let x = tensor(&probe, "prompt0.layer0.attn_norm_out"); // [5, 576]
    let x: Tensor<3> = Tensor::from_data(TensorData::new(x, [1, 5, 576]), &default_device());
    for (w, name) in [
        (LayerWeight::Q, "q_proj"),
        (LayerWeight::K, "k_proj"),
        (LayerWeight::V, "v_proj"),
    ] {
        let got = weights.delta(0, w, x.clone(), 1.0).expect("layer 0 is adapted");
        let got = got.into_data().try_to_vec::<f32>().expect("f32");
        let want = tensor(&probe, &format!("prompt0.layer0.{name}.lora_delta.gguf_rows"));
        let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-4, "{name}: max |delta - PEFT| = {max}");
    }
}

/// Last-position logits of `ids` with `adapter` at `scale` (or the base model).
fn logits(ids: &[u32], adapter: Option<(&Arc<LoraWeights>, f32)>) -> Vec<f32> {
    let (model, _) = default_model();
    let lora = match adapter {
        Some((w, scale)) => LoraBatch::uniform(vec![(Arc::clone(w), scale)]),
        None => LoraBatch::none(),
    };
    let mut cache = model.new_cache(ids.len() + 1);
    model.next_logits_with(ids, &mut cache, &lora)
}

#[test]
fn random_adapter_moves_full_model_logits_as_peft_does() {
    let weights = Arc::new(
        load("peft-lora-smollm2")
            .to_weights(&default_device())
            .expect("weights"),
    );
    let expected: serde_json::Value = reference_json("peft-lora-smollm2/expected.json");
    let bytes = read(reference_path("peft-lora-smollm2/logits.safetensors"));
    let stored = SafeTensors::deserialize(&bytes).expect("logits");
    for (i, prompt) in expected["prompts"].as_array().expect("prompts").iter().enumerate() {
        let ids = token_ids(&prompt["token_ids"]);
        let text = prompt["text"].as_str().expect("text");
        assert_eq!(default_model().1.encode(text).expect("encodes"), ids, "prompt ids");
        for (scale, key) in [(1.0, "adapted"), (0.5, "adapted_scale0.5")] {
            let got = logits(&ids, Some((&weights, scale)));
            let want = tensor(&stored, &format!("prompt{i}.{key}"));
            assert_eq!(argmax(&got), argmax(&want), "top-1, prompt {i} {key}");
            let overlap = top(&got, 10).iter().filter(|t| top(&want, 10).contains(t)).count();
            assert!(overlap >= 8, "top-10 overlap {overlap}, prompt {i} {key}");
            let diff = mean_abs_diff(&got, &want);
            // 8-bit activation noise is ~0.2; a missing adapter is 1.9 and a wrong scale 0.86.
            if i == 0 {
                assert!(diff < 0.35, "mean |logit - PEFT| = {diff}, prompt 0 {key}");
            }
        }
    }
}

#[test]
fn trained_adapter_reproduces_peft_greedy_text_at_scale_1_and_half() {
    let weights = Arc::new(
        load("peft-trained-smollm2")
            .to_weights(&default_device())
            .expect("weights"),
    );
    let expected: serde_json::Value = reference_json("peft-trained-smollm2/expected.json");
    let (model, _) = default_model();
    for prompt in expected["prompts"].as_array().expect("prompts") {
        let ids = token_ids(&prompt["token_ids"]);
        // Compared over each case's robust prefix: the leading steps PEFT chose by a margin >= 1.
        for (scale, variant) in [
            (1.0, "adapted_greedy24"),
            (0.5, "adapted_scale0.5_greedy24"),
            (0.0, "base_greedy24"),
        ] {
            let case = &prompt[variant];
            let want = token_ids(&case["ids"]);
            let robust = case["robust_prefix_margin_ge_1"].as_u64().expect("robust prefix") as usize;
            let lora = if scale > 0.0 {
                LoraBatch::uniform(vec![(Arc::clone(&weights), scale)])
            } else {
                LoraBatch::none()
            };
            let mut cache = model.new_cache(ids.len() + robust + 1);
            let mut next = model.next_logits_with(&ids, &mut cache, &lora);
            let mut got = Vec::new();
            for _ in 0..robust {
                let t = argmax(&next) as u32;
                got.push(t);
                next = model.next_logits_with(&[t], &mut cache, &lora);
            }
            assert_eq!(got, want[..robust], "greedy {variant} for {:?}", prompt["text"]);
        }
    }
}

#[test]
fn saved_adapter_reads_back_identically_in_peft_layout() {
    let adapter = load("peft-lora-smollm2");
    let dir = tempfile::tempdir().expect("tempdir");
    save_peft(&adapter, dir.path(), default_model().0.config()).expect("saves");
    let again = load_peft(dir.path(), default_model().0.config()).expect("reloads");
    assert_eq!(again.config, adapter.config);
    assert_eq!(again.pairs.len(), 30 * 7);
    for (a, b) in adapter.pairs.iter().zip(&again.pairs) {
        assert_eq!((a.layer, a.weight, &a.a, &a.b), (b.layer, b.weight, &b.a, &b.b));
    }
    // The saved file is PEFT's: same keys, shapes and dtype, and B of q/k back in HF row order.
    let ours = read(dir.path().join("adapter_model.safetensors"));
    let theirs = read(reference_path("peft-lora-smollm2/adapter_model.safetensors"));
    let (ours, theirs) = (
        SafeTensors::deserialize(&ours).expect("ours"),
        SafeTensors::deserialize(&theirs).expect("theirs"),
    );
    let mut names: Vec<String> = theirs.names().into_iter().map(str::to_string).collect();
    names.sort();
    let mut our_names: Vec<String> = ours.names().into_iter().map(str::to_string).collect();
    our_names.sort();
    assert_eq!(our_names, names);
    for name in &names {
        assert_eq!(
            ours.tensor(name).expect("ours").shape(),
            theirs.tensor(name).expect("theirs").shape()
        );
        assert_eq!(tensor(&ours, name), tensor(&theirs, name), "{name}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&read(dir.path().join("adapter_config.json"))).expect("config json");
    assert_eq!(
        (config["r"].as_u64(), config["lora_alpha"].as_f64()),
        (Some(8), Some(16.0))
    );
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["target_modules"].as_array().map(Vec::len), Some(7));
}

#[test]
fn adapter_with_wrong_shapes_is_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        reference_path("peft-lora-smollm2/adapter_config.json"),
        dir.path().join("adapter_config.json"),
    )
    .expect("copy");
    let a = vec![0u8; 8 * 100 * 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![8, 100], &a).expect("view");
    let key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    safetensors::serialize_to_file(vec![(key, view)], None, &dir.path().join("adapter_model.safetensors"))
        .expect("write");
    let err = load_peft(dir.path(), default_model().0.config()).expect_err("refused");
    assert!(matches!(err, AdapterError::Shape { .. }), "{err}");
    assert!(err.to_string().contains(key), "{err}");
}

#[test]
fn base_config_comes_from_the_weight_source() {
    // The adapter checks against the same config the model was built from.
    let source = GgufSource::open(&default_model_path()).expect("opens");
    assert_eq!(source.config(), default_model().0.config());
}

#[test]
fn gguf_export_equals_llama_cpps_own_conversion_of_the_trained_adapter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("adapter.gguf");
    airlock_adapter::export_gguf(&load("peft-trained-smollm2"), "llama", &ours).expect("exports");
    let ours = airlock_gguf::GgufFile::open(&ours).expect("reads back");
    // Written by llama.cpp's convert_lora_to_gguf.py (the reference README says how).
    let theirs = airlock_gguf::GgufFile::open(&reference_path("peft-trained-smollm2/adapter.gguf")).expect("reference");
    for key in ["general.architecture", "general.type", "adapter.type"] {
        assert_eq!(ours.get_str(key).expect(key), theirs.get_str(key).expect(key), "{key}");
    }
    let alpha = |f: &airlock_gguf::GgufFile| f.get_f32("adapter.lora.alpha").expect("alpha");
    assert_eq!(alpha(&ours), alpha(&theirs));
    assert_eq!(ours.tensors.len(), theirs.tensors.len());
    for info in &theirs.tensors {
        let mine = ours
            .tensor(&info.name)
            .unwrap_or_else(|| panic!("{} missing", info.name));
        assert_eq!(mine.dims, info.dims, "{}", info.name);
        let (a, b) = (
            ours.dequantize(&info.name).expect("ours"),
            theirs.dequantize(&info.name).expect("theirs"),
        );
        assert_eq!(
            a, b,
            "{}: values differ from llama.cpp's (q/k lora_b row order?)",
            info.name
        );
    }
}
