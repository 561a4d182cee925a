//! `airlock-bench train`: airlock's trainer against PEFT on PyTorch (CPU) on the same data: the
//! same token ids and loss masks (tokenized once here and handed to both), LoRA r=8 alpha 16 on
//! all seven projections, batches of 4, AdamW at a constant rate, the same thread count. Each
//! side trains one epoch over the same examples in a child process of its own, then reports
//! tokens/s, peak RSS and the validation loss after training.
//!
//! `bash bench/setup_peft.sh && cargo run --release -p airlock-bench -- train`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use airlock_model::GgufSource;
use airlock_tokenizer::Tokenizer;
use airlock_train::data::{Dataset, Example, load_dataset};
use airlock_train::{RunOptions, RunPaths, TrainOptions};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::measurement::peak_rss_kib;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Dataset folder (train.jsonl and valid.jsonl) both sides train on.
    #[arg(long, default_value = "datasets/medical-billing")]
    pub data: PathBuf,
    /// Optimizer steps (each side sees `steps * batch_size` training examples once).
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Examples are cut to this many tokens.
    #[arg(long, default_value_t = 256)]
    pub max_seq_len: usize,
    /// Validation examples scored after training.
    #[arg(long, default_value_t = 16)]
    pub valid: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Python of the virtualenv that `bench/setup_peft.sh` made.
    #[arg(long, default_value = "bench/.venv-peft/bin/python")]
    pub python: PathBuf,
    #[arg(long, default_value = "bench/peft_peer.py")]
    pub peer: PathBuf,
    /// Seconds a child may run.
    #[arg(long, default_value_t = 1200)]
    pub child_timeout: u64,
}

/// What both sides train on: written by the parent, read by each child.
#[derive(Serialize, Deserialize)]
pub struct Batches {
    pub options: BatchOptions,
    pub train: Vec<Tokens>,
    pub valid: Vec<Tokens>,
}

#[derive(Serialize, Deserialize)]
pub struct BatchOptions {
    pub rank: usize,
    pub alpha: f32,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Tokens {
    pub tokens: Vec<u32>,
    pub learn: Vec<bool>,
}

/// One side's run, as its child prints it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainRun {
    pub load_s: f64,
    pub train_s: f64,
    pub tokens: usize,
    pub steps: usize,
    pub losses: Vec<f64>,
    pub valid_loss: f64,
    pub peak_rss_kib: u64,
}

impl TrainRun {
    fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.train_s
    }
}

/// The parent: tokenize, run both children, print the table.
pub fn compare(args: &TrainArgs, model: &Path, threads: usize) -> anyhow::Result<()> {
    if !args.python.exists() {
        bail!("{} not found: run bench/setup_peft.sh first", args.python.display());
    }
    let source = GgufSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    let tokenizer = Tokenizer::from_gguf(source.file())?;
    let dataset = load_dataset(&args.data, &tokenizer, false, args.max_seq_len)?;
    let n = args.steps * args.batch_size;
    if dataset.train.len() < n || dataset.valid.len() < args.valid {
        bail!("{} has too few examples for {} steps", args.data.display(), args.steps);
    }
    let tokens = |e: &Example| Tokens {
        tokens: e.tokens.clone(),
        learn: e.learn.clone(),
    };
    let batches = Batches {
        options: BatchOptions {
            rank: 8,
            alpha: 16.0,
            learning_rate: args.learning_rate,
            batch_size: args.batch_size,
            seed: 0,
        },
        train: dataset.train[..n].iter().map(tokens).collect(),
        valid: dataset.valid[..args.valid].iter().map(tokens).collect(),
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("batches.json");
    std::fs::write(&file, serde_json::to_vec(&batches)?)?;

    let timeout = Duration::from_secs(args.child_timeout);
    let exe = std::env::current_exe()?;
    let mut ours = Command::new(exe);
    ours.arg("--model").arg(model).arg("--threads").arg(threads.to_string());
    ours.arg("airlock-train").arg("--batches").arg(&file);
    let ours: TrainRun = crate::run_child(ours, "airlock trainer", timeout)?;
    let mut peft = Command::new(&args.python);
    peft.arg(&args.peer).arg("--model").arg(model).arg("--data").arg(&file);
    peft.args(["--threads", &threads.to_string()]);
    let peft: TrainRun = crate::run_child(peft, "PEFT", timeout)?;

    println!("{}", table(args, threads, &ours, &peft));
    Ok(())
}

fn table(args: &TrainArgs, threads: usize, ours: &TrainRun, peft: &TrainRun) -> String {
    let gib = |r: &TrainRun| r.peak_rss_kib as f64 / (1024.0 * 1024.0);
    let first_last = |r: &TrainRun| {
        format!(
            "{:.3} -> {:.3}",
            r.losses.first().copied().unwrap_or(f64::NAN),
            r.losses.last().copied().unwrap_or(f64::NAN)
        )
    };
    let mut out = format!(
        "LoRA r=8 alpha 16, 7 projections, {} steps of batch {} (<= {} tokens), lr {} constant, {} threads\n\n",
        args.steps, args.batch_size, args.max_seq_len, args.learning_rate, threads
    );
    out += "| | airlock | PEFT | airlock / PEFT |\n| --- | --- | --- | --- |\n";
    let rows = [
        ("training tokens/s", ours.tokens_per_second(), peft.tokens_per_second()),
        ("peak RSS (GiB)", gib(ours), gib(peft)),
        ("training seconds", ours.train_s, peft.train_s),
        ("load seconds", ours.load_s, peft.load_s),
        ("validation loss after training", ours.valid_loss, peft.valid_loss),
    ];
    for (name, a, p) in rows {
        out += &format!("| {name} | {a:.3} | {p:.3} | {:.2}x |\n", a / p);
    }
    out += &format!(
        "| train loss first -> last step | {} | {} | |\n",
        first_last(ours),
        first_last(peft)
    );
    out
}

/// The airlock child: train on the parent's batches in this process and print one JSON line.
pub fn airlock_child(model: &Path, batches: &Path) -> anyhow::Result<TrainRun> {
    let batches: Batches = serde_json::from_slice(&std::fs::read(batches)?)?;
    let started = std::time::Instant::now();
    let source = GgufSource::open(model)?;
    let llama = airlock_train::load_base(&source)?;
    let load_s = started.elapsed().as_secs_f64();
    let examples = |t: &[Tokens]| -> Vec<Example> {
        t.iter()
            .map(|t| Example {
                tokens: t.tokens.clone(),
                learn: t.learn.clone(),
            })
            .collect()
    };
    let dataset = Dataset {
        train: examples(&batches.train),
        valid: examples(&batches.valid),
        truncated: 0,
    };
    let o = &batches.options;
    let steps = dataset.train.len() / o.batch_size;
    let config = TrainOptions {
        rank: Some(o.rank),
        alpha: Some(o.alpha),
        dropout: Some(0.0),
        learning_rate: Some(o.learning_rate),
        warmup_steps: Some(0),
        schedule: Some("constant".into()),
        weight_decay: Some(0.0),
        max_grad_norm: Some(0.0),
        batch_size: Some(o.batch_size),
        iters: Some(steps),
        seed: Some(o.seed),
        eval_every: Some(steps),
        eval_batches: Some(dataset.valid.len().div_ceil(o.batch_size)),
        save_every: Some(steps),
        ..TrainOptions::default()
    }
    .resolve()?;
    let dir = tempfile::tempdir()?;
    let paths = RunPaths {
        out: dir.path().join("adapter"),
    };
    let options = RunOptions {
        resume: false,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let summary = airlock_train::train(&llama, &dataset, &config, &paths, &options)?;
    // The metrics log's last line: training speed before the final validation and save.
    let log = std::fs::read_to_string(paths.metrics())?;
    let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let tokens: usize = lines.iter().filter_map(|l| l["tokens"].as_u64()).sum::<u64>() as usize;
    let tps = lines
        .last()
        .and_then(|l| l["tokens_per_second"].as_f64())
        .unwrap_or(f64::NAN);
    Ok(TrainRun {
        load_s,
        train_s: tokens as f64 / tps,
        tokens,
        steps: summary.steps,
        losses: lines.iter().filter_map(|l| l["loss"].as_f64()).collect(),
        valid_loss: summary.best_valid_loss.unwrap_or(f64::NAN),
        peak_rss_kib: peak_rss_kib(),
    })
}
