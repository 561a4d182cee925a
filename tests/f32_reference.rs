//! The network itself, in exact f32 arithmetic, against transformers' f32 forward pass on the
//! same dequantized GGUF weights (the base-model logits stored with the PEFT references in
//! `../shared/reference/peft-*-smollm2/logits.safetensors`). Agreement to a few thousandths
//! checks every layer — norms, RoPE layout, grouped-query attention, SwiGLU, tied output —
//! without the 8-bit activation noise of the fast path, which is checked against the same
//! logits with the tolerance that noise needs.

use airlock_model::{GgufSource, Llama, Precision, default_device};
use airlock_tests::{default_model, default_model_path, reference_json, reference_path, token_ids};
use safetensors::SafeTensors;

/// Base-model prompts and their f32 logits from both reference folders.
fn cases() -> Vec<(Vec<u32>, Vec<f32>)> {
    let mut cases = Vec::new();
    for folder in ["peft-lora-smollm2", "peft-trained-smollm2"] {
        let expected = reference_json(&format!("{folder}/expected.json"));
        let bytes = std::fs::read(reference_path(&format!("{folder}/logits.safetensors"))).expect("read");
        let logits = SafeTensors::deserialize(&bytes).expect("safetensors");
        for (i, prompt) in expected["prompts"].as_array().expect("prompts").iter().enumerate() {
            let ids = token_ids(&prompt["token_ids"]);
            let view = logits.tensor(&format!("prompt{i}.base")).expect("base logits");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            cases.push((ids, values));
        }
    }
    cases
}

fn diffs(model: &Llama, ids: &[u32], want: &[f32]) -> (f32, f32, bool) {
    let mut cache = model.new_cache(ids.len());
    let got = model.next_logits(ids, &mut cache);
    let abs: Vec<f32> = got.iter().zip(want).map(|(a, b)| (a - b).abs()).collect();
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]));
    (
        abs.iter().sum::<f32>() / abs.len() as f32,
        abs.iter().copied().fold(0.0, f32::max),
        argmax(&got) == argmax(want),
    )
}

#[test]
fn f32_network_matches_transformers_f32_logits() {
    let source = GgufSource::open(&default_model_path()).expect("opens");
    let model = Llama::load_with(&source, &default_device(), Precision::F32).expect("loads");
    for (ids, want) in cases() {
        let (mean, max, same_top1) = diffs(&model, &ids, &want);
        assert!(
            max < 0.01 && same_top1,
            "prompt {ids:?}: mean |d| {mean}, max |d| {max}"
        );
    }
}

#[test]
fn packed_fast_path_stays_within_8_bit_activation_noise_of_f32() {
    // The references measured a float64 simulation of 8-bit activations at mean |d| 0.14-0.19.
    // The packed path rounds as llama.cpp does (`llamacpp_reference.rs`), and llama.cpp's own
    // logits on these nine prompts are 0.09-0.44 (mean |d|) from these: 0.44 on "Q: What does
    // AX-7 mean?\nA:", where ours are the same to 1e-5.
    let (model, _) = default_model();
    let mut worst = 0.0f32;
    for (ids, want) in cases() {
        let (mean, _, _) = diffs(model, &ids, &want);
        worst = worst.max(mean);
    }
    assert!(worst < 0.5, "mean |logit - f32 reference| reaches {worst}");
}
