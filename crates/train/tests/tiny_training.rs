//! Training a tiny random Llama (built in code) for a few steps: B starts at zero so step 0 is
//! the base model, the loss falls, a resumed run continues the same loss curve, and a save cut
//! short leaves the previous checkpoint whole.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use airlock_model::tiny::{VOCAB, random_weights, write_gguf};
use airlock_model::{Dropout, GgufSource, Llama, LoraBatch, Precision};
use airlock_train::checkpoint::{self, LoopState};
use airlock_train::data::{Dataset, Example};
use airlock_train::{LoraState, RunOptions, RunPaths, TrainOptions, train};
use burn::tensor::Device;

fn tiny_model(dir: &Path) -> Llama {
    let path = write_gguf(dir, &random_weights(false)).expect("tiny gguf");
    Llama::load_with(
        &GgufSource::open(&path).expect("opens"),
        &Device::flex().autodiff(),
        Precision::F32,
    )
    .expect("loads")
}

/// Sequences following a fixed rule (next = 3 * current + 1 mod vocab), prompt half masked.
fn dataset(n: usize) -> Dataset {
    let example = |start: usize| {
        let tokens: Vec<u32> = std::iter::successors(Some(start as u32), |&t| Some((3 * t + 1) % VOCAB as u32))
            .take(12)
            .collect();
        let learn = (0..tokens.len()).map(|i| i >= 4).collect();
        Example { tokens, learn }
    };
    Dataset {
        train: (0..n).map(example).collect(),
        valid: (n..n + 4).map(example).collect(),
        truncated: 0,
    }
}

fn options(iters: usize) -> TrainOptions {
    TrainOptions {
        rank: Some(4),
        learning_rate: Some(1e-2),
        schedule: Some("constant".into()),
        batch_size: Some(4),
        iters: Some(iters),
        eval_every: Some(5),
        save_every: Some(3),
        seed: Some(7),
        ..TrainOptions::default()
    }
}

/// Driven from outside: no progress bar, never stopped.
fn quiet(resume: bool) -> RunOptions {
    RunOptions {
        resume,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

fn run(model: &Llama, out: &Path, iters: usize, resume: bool) -> Vec<f64> {
    let config = options(iters).resolve().expect("valid options");
    let paths = RunPaths { out: out.to_path_buf() };
    train(model, &dataset(16), &config, &paths, &quiet(resume)).expect("trains");
    std::fs::read_to_string(paths.metrics())
        .expect("metrics")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json line")["loss"]
                .as_f64()
                .expect("loss")
        })
        .collect()
}

#[test]
fn lora_b_is_zero_initialized_so_step_0_reproduces_the_base_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let state = LoraState::init(model.config(), &options(1).resolve().expect("options"), model.device());
    let ids = [3u32, 17, 5, 41];
    let base = model.next_logits(&ids, &mut model.new_cache(8));
    let adapted = model.next_logits_with(
        &ids,
        &mut model.new_cache(8),
        &LoraBatch::uniform(vec![(state.pass(Dropout::default()).0, 1.0)]),
    );
    assert_eq!(base, adapted);
}

#[test]
fn loss_falls_and_a_resumed_run_continues_the_same_curve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let whole = run(&model, &dir.path().join("whole"), 24, false);
    assert_eq!(whole.len(), 24);
    let (first, last) = (whole[0], whole[whole.len() - 1]);
    assert!(last < 0.6 * first, "loss went from {first} to {last}");

    // The same run stopped after 12 steps (its last checkpoint), then resumed to 24.
    let split = dir.path().join("split");
    run(&model, &split, 12, false);
    let resumed = run(&model, &split, 24, true);
    assert_eq!(resumed.len(), 24);
    for (step, (a, b)) in whole.iter().zip(&resumed).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "step {}: {a} uninterrupted vs {b} resumed",
            step + 1
        );
    }
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "loss.svg",
        "metrics.jsonl",
    ] {
        assert!(split.join(file).exists(), "{file} is written");
    }
}

#[test]
fn a_save_cut_short_leaves_the_previous_checkpoint_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let config = options(1).resolve().expect("options");
    let state = LoraState::init(model.config(), &config, model.device());
    let ckpts = dir.path().join("checkpoints");
    let counters = LoopState {
        step: 3,
        ..LoopState::default()
    };
    checkpoint::save(&ckpts, &state, &counters, model.config()).expect("saved");
    // A crash while writing step 6: its folder is half written and `latest` was never moved.
    std::fs::create_dir_all(ckpts.join(".step-6.tmp")).expect("mkdir");
    std::fs::write(ckpts.join(".step-6.tmp/adapter_model.safetensors"), b"truncat").expect("write");
    let latest = checkpoint::latest(&ckpts).expect("a checkpoint");
    assert!(latest.ends_with("step-3"), "{}", latest.display());
    let (restored, restored_counters) = checkpoint::load(&latest, model.config(), model.device()).expect("loads");
    assert_eq!(restored_counters, counters);
    assert_eq!(restored.to_adapter().pairs.len(), state.to_adapter().pairs.len());
    for (a, b) in restored.to_adapter().pairs.iter().zip(state.to_adapter().pairs) {
        assert_eq!((&a.a, &a.b), (&b.a, &b.b));
    }
}

#[test]
fn a_run_can_start_from_an_adapter_of_the_same_shape_and_refuses_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let first = dir.path().join("first");
    run(&model, &first, 6, false);
    let opts = quiet(false);
    let from_first = |rank: usize| TrainOptions {
        rank: Some(rank),
        learning_rate: Some(0.0),
        init_adapter: Some(first.clone()),
        ..options(1)
    };

    // At learning rate 0 the run's adapter is the one it started from.
    let second = RunPaths {
        out: dir.path().join("second"),
    };
    let config = from_first(4).resolve().expect("valid options");
    train(&model, &dataset(16), &config, &second, &opts).expect("trains");
    let pairs = |out: &Path| {
        let mut pairs = airlock_adapter::load_peft(out, model.config())
            .expect("an adapter")
            .pairs;
        pairs.sort_by_key(|p| (p.layer, p.weight));
        pairs
            .into_iter()
            .map(|p| (p.layer, p.weight, p.a, p.b))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&second.out), pairs(&first));

    let third = RunPaths {
        out: dir.path().join("third"),
    };
    let config = from_first(2).resolve().expect("valid options");
    let err = train(&model, &dataset(16), &config, &third, &opts).expect_err("rank 2 is not rank 4");
    assert!(err.to_string().contains("init_adapter"), "{err}");
}
