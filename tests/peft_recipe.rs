//! As correct as PEFT: trained on the reference glossary (`../shared/reference/peft-trained-
//! smollm2/train.jsonl`) with PEFT's recipe (r 8, alpha 16, all seven projections, AdamW lr 1e-3
//! constant, batches of 8, 64 steps, completion-only loss, no dropout or clipping), airlock's
//! adapter reproduces the reference adapter's greedy text and its loss falls like PEFT's
//! `metrics.jsonl`. A few minutes on 2 cores.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use airlock_model::{GgufSource, LoraBatch};
use airlock_tests::{default_model, default_model_path, reference_json, reference_path, token_ids};
use airlock_train::{RunOptions, RunPaths, TrainOptions, data};

fn peft_losses() -> Vec<f64> {
    std::fs::read_to_string(reference_path("peft-trained-smollm2/metrics.jsonl"))
        .expect("metrics")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
        .collect()
}

#[test]
fn peft_recipe_reproduces_the_reference_adapter() {
    let source = GgufSource::open(&default_model_path()).expect("opens");
    let (packed, tokenizer) = default_model();
    let options = TrainOptions {
        rank: Some(8),
        alpha: Some(16.0),
        dropout: Some(0.0),
        learning_rate: Some(1e-3),
        schedule: Some("constant".into()),
        batch_size: Some(8),
        iters: Some(64),
        max_grad_norm: Some(0.0),
        max_seq_len: Some(512),
        save_every: Some(64),
        ..TrainOptions::default()
    };
    let config = options.resolve().expect("options");
    let dataset = data::load_dataset(
        &reference_path("peft-trained-smollm2/train.jsonl"),
        tokenizer,
        false,
        512,
    )
    .expect("the reference data loads");
    assert_eq!(dataset.train.len(), 32);
    let model = airlock_train::load_base(&source).expect("loads");
    let out = tempfile::tempdir().expect("tempdir");
    let paths = RunPaths {
        out: out.path().to_path_buf(),
    };
    let started = std::time::Instant::now();
    let opts = RunOptions {
        resume: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    airlock_train::train(&model, &dataset, &config, &paths, &opts).expect("trains");
    eprintln!("64 PEFT-recipe steps took {:.0} s", started.elapsed().as_secs_f64());

    // The loss falls like PEFT's (one minibatch per step, so compared over windows of 8 steps):
    // ~5 at the start, about 1 around step 20, under 0.05 at the end.
    let ours: Vec<f64> = std::fs::read_to_string(paths.metrics())
        .expect("metrics")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["loss"]
                .as_f64()
                .expect("loss")
        })
        .collect();
    let theirs = peft_losses();
    assert!(
        (ours[0] - theirs[0]).abs() < 0.6,
        "first loss {} vs PEFT {}",
        ours[0],
        theirs[0]
    );
    let window = |losses: &[f64], from: usize| losses[from..from + 8].iter().sum::<f64>() / 8.0;
    // PEFT's log starts with step 0 (before any update); ours with step 1.
    let (mid, peft_mid) = (window(&ours, 16), window(&theirs, 17));
    assert!(
        mid < 1.5 * peft_mid + 0.1,
        "steps 17-24: mean loss {mid} vs PEFT's {peft_mid}"
    );
    let tail = window(&ours, 56);
    assert!(tail < 0.05, "mean loss over the last 8 steps is {tail}");

    // The adapter, applied to the packed (8-bit activation) model, says what PEFT's says.
    let adapter = airlock_adapter::load_peft(out.path(), packed.config()).expect("the saved adapter loads");
    let lora = LoraBatch::uniform(vec![(
        Arc::new(adapter.to_weights(packed.device()).expect("weights")),
        1.0,
    )]);
    let expected = reference_json("peft-trained-smollm2/expected.json");
    for prompt in &expected["prompts"].as_array().expect("prompts")[..5] {
        let ids = token_ids(&prompt["token_ids"]);
        let want = token_ids(&prompt["adapted_greedy24"]["ids"]);
        let mut cache = packed.new_cache(ids.len() + want.len());
        let mut logits = packed.next_logits_with(&ids, &mut cache, &lora);
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let t = airlock_engine::argmax(&logits);
            got.push(t);
            logits = packed.next_logits_with(&[t], &mut cache, &lora);
        }
        assert_eq!(
            got,
            want,
            "greedy text for {:?}: {:?}",
            prompt["text"],
            tokenizer.decode(&got)
        );
    }
}
