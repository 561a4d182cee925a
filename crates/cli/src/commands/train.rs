//! `airlock train`: fine-tune a LoRA adapter on a JSONL dataset, with options from a TOML config
//! and flags (flags win), a progress bar, metrics, checkpoints and `--resume`; Ctrl-C saves a
//! checkpoint before exiting.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_model::GgufSource;
use airlock_tokenizer::Tokenizer;
use airlock_train::{RunOptions, RunPaths, TrainOptions, data};
use anyhow::Context;

use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A dataset folder (train.jsonl, optional valid.jsonl) or one JSONL file.
    #[arg(long)]
    pub data: PathBuf,
    /// Folder for the adapter, metrics.jsonl, loss.svg and checkpoints.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with any of the options below (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Base model: a store name or a GGUF path (default: $AIRLOCK_MODEL or the default model).
    #[arg(long)]
    pub model: Option<String>,
    /// Continue from the newest checkpoint in OUT/checkpoints.
    #[arg(long)]
    pub resume: bool,
    #[arg(long)]
    pub rank: Option<usize>,
    #[arg(long)]
    pub alpha: Option<f32>,
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Comma-separated projections (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_delimiter = ',')]
    pub target_modules: Option<Vec<String>>,
    /// Comma-separated layer indices to adapt (default: all).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Scale by alpha / sqrt(r) (rsLoRA).
    #[arg(long)]
    pub rslora: bool,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// cosine or constant.
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// 0 disables clipping.
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub grad_accumulation: Option<usize>,
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Optimizer steps (overrides --epochs).
    #[arg(long)]
    pub iters: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Learn the prompt tokens too.
    #[arg(long)]
    pub train_on_prompt: bool,
    #[arg(long)]
    pub eval_every: Option<usize>,
    #[arg(long)]
    pub eval_batches: Option<usize>,
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Stop after this many evaluations without improvement (0 = never).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Start from this adapter's factors instead of fresh ones (same rank, alpha, targets, layers).
    #[arg(long)]
    pub init_adapter: Option<PathBuf>,
}

impl Args {
    fn flags(&self) -> TrainOptions {
        TrainOptions {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            layers: self.layers.clone(),
            rslora: self.rslora.then_some(true),
            learning_rate: self.learning_rate,
            warmup_steps: self.warmup_steps,
            schedule: self.schedule.clone(),
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            batch_size: self.batch_size,
            grad_accumulation: self.grad_accumulation,
            max_seq_len: self.max_seq_len,
            epochs: self.epochs,
            iters: self.iters,
            seed: self.seed,
            train_on_prompt: self.train_on_prompt.then_some(true),
            eval_every: self.eval_every,
            eval_batches: self.eval_batches,
            save_every: self.save_every,
            patience: self.patience,
            init_adapter: self.init_adapter.clone(),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => TrainOptions::from_toml_file(path)?,
        None => TrainOptions::default(),
    };
    let options = file.overridden_by(args.flags());
    let config = options.resolve()?;
    let path = loaded::resolve(args.model.as_deref())?;
    let source = GgufSource::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(source.file())?;
    // Reading and checking the whole dataset first: a bad line stops before any training.
    let dataset = data::load_dataset(&args.data, &tokenizer, config.train_on_prompt, config.max_seq_len)?;
    if dataset.truncated > 0 {
        eprintln!(
            "warning: {} examples were longer than {} tokens and were truncated",
            dataset.truncated, config.max_seq_len
        );
    }
    let model = airlock_train::load_base(&source)?;
    std::fs::create_dir_all(&args.out)?;
    let resolved = toml::to_string(&options).unwrap_or_default();
    airlock_adapter::write_atomic(&RunPaths { out: args.out.clone() }.config(), resolved.as_bytes())?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130); // a second Ctrl-C does not wait for the checkpoint
        }
        eprintln!("\nstopping: saving a checkpoint after this step (Ctrl-C again to quit now)");
    })?;
    eprintln!(
        "training on {} examples ({} for validation), rank {}, lr {}",
        dataset.train.len(),
        dataset.valid.len(),
        config.rank,
        config.learning_rate
    );
    let paths = RunPaths { out: args.out.clone() };
    let summary = airlock_train::train(
        &model,
        &dataset,
        &config,
        &paths,
        &RunOptions {
            resume: args.resume,
            progress: true,
            stop,
        },
    )?;
    eprintln!(
        "{} steps, last loss {:.4}, best validation loss {}, {:.0} tokens/s{}{}",
        summary.steps,
        summary.last_loss,
        summary.best_valid_loss.map_or("-".into(), |v| format!("{v:.4}")),
        summary.tokens_per_second,
        if summary.early_stopped { ", stopped early" } else { "" },
        if summary.interrupted {
            ", interrupted (resume with --resume)"
        } else {
            ""
        },
    );
    println!("{}", args.out.display());
    Ok(())
}
