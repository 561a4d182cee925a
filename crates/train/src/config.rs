//! Training options: a TOML file and command-line flags, parsed as they are (every field
//! optional) and then resolved once into [`TrainConfig`], where every default lives. Defaults
//! follow PEFT and mlx-lm.

use std::path::{Path, PathBuf};

use airlock_model::LayerWeight;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Options as a config file or the command line gives them; flags override the file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    pub rank: Option<usize>,
    pub alpha: Option<f32>,
    pub dropout: Option<f32>,
    /// Projection names (`q_proj`, ..., `down_proj`); all seven by default.
    pub target_modules: Option<Vec<String>>,
    /// Adapt only these layers (all by default).
    pub layers: Option<Vec<usize>>,
    pub rslora: Option<bool>,
    pub learning_rate: Option<f64>,
    pub warmup_steps: Option<usize>,
    /// `cosine` or `constant`.
    pub schedule: Option<String>,
    pub weight_decay: Option<f64>,
    pub max_grad_norm: Option<f64>,
    pub batch_size: Option<usize>,
    pub grad_accumulation: Option<usize>,
    pub max_seq_len: Option<usize>,
    pub epochs: Option<usize>,
    /// Optimizer steps; overrides `epochs` when set.
    pub iters: Option<usize>,
    pub seed: Option<u64>,
    pub train_on_prompt: Option<bool>,
    pub eval_every: Option<usize>,
    pub eval_batches: Option<usize>,
    pub save_every: Option<usize>,
    /// Stop after this many evaluations without a better validation loss (0 = never).
    pub patience: Option<usize>,
    /// Start from this adapter's factors instead of fresh ones (mlx-lm's
    /// `--resume-adapter-file`): its rank, alpha, targets and layers must be this run's.
    pub init_adapter: Option<PathBuf>,
}

impl TrainOptions {
    pub fn from_toml_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| TrainError::Config {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// `self` with every field that `over` sets replaced.
    pub fn overridden_by(self, over: TrainOptions) -> Self {
        macro_rules! pick {
            ($($f:ident),*) => { Self { $($f: over.$f.or(self.$f)),* } };
        }
        pick!(
            rank,
            alpha,
            dropout,
            target_modules,
            layers,
            rslora,
            learning_rate,
            warmup_steps,
            schedule,
            weight_decay,
            max_grad_norm,
            batch_size,
            grad_accumulation,
            max_seq_len,
            epochs,
            iters,
            seed,
            train_on_prompt,
            eval_every,
            eval_batches,
            save_every,
            patience,
            init_adapter
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Cosine,
    Constant,
}

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Epochs(usize),
    Iters(usize),
}

/// The resolved configuration of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub rank: usize,
    pub alpha: f32,
    pub dropout: f32,
    pub targets: Vec<LayerWeight>,
    pub layers: Option<Vec<usize>>,
    pub rslora: bool,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub schedule: Schedule,
    pub weight_decay: f64,
    pub max_grad_norm: Option<f64>,
    pub batch_size: usize,
    pub grad_accumulation: usize,
    pub max_seq_len: usize,
    pub length: Length,
    pub seed: u64,
    pub train_on_prompt: bool,
    pub eval_every: usize,
    pub eval_batches: usize,
    pub save_every: usize,
    pub patience: usize,
    pub init_adapter: Option<PathBuf>,
}

impl TrainOptions {
    pub fn resolve(&self) -> Result<TrainConfig, TrainError> {
        let bad = |reason: String| Err(TrainError::Option(reason));
        let targets = match &self.target_modules {
            None => LayerWeight::PROJECTIONS.to_vec(),
            Some(names) => {
                let mut targets = Vec::new();
                for name in names {
                    match airlock_adapter::projection(name) {
                        Some(w) => targets.push(w),
                        None => {
                            return bad(format!(
                                "unknown target module `{name}` (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"
                            ));
                        }
                    }
                }
                targets
            }
        };
        let schedule = match self.schedule.as_deref().unwrap_or("cosine") {
            "cosine" => Schedule::Cosine,
            "constant" => Schedule::Constant,
            other => return bad(format!("unknown schedule `{other}` (cosine or constant)")),
        };
        let config = TrainConfig {
            rank: self.rank.unwrap_or(8),
            alpha: self.alpha.unwrap_or(16.0),
            dropout: self.dropout.unwrap_or(0.05),
            targets,
            layers: self.layers.clone(),
            rslora: self.rslora.unwrap_or(false),
            learning_rate: self.learning_rate.unwrap_or(2e-4),
            warmup_steps: self.warmup_steps.unwrap_or(0),
            schedule,
            weight_decay: self.weight_decay.unwrap_or(0.0),
            max_grad_norm: Some(self.max_grad_norm.unwrap_or(1.0)).filter(|&n| n > 0.0),
            batch_size: self.batch_size.unwrap_or(4),
            grad_accumulation: self.grad_accumulation.unwrap_or(1),
            max_seq_len: self.max_seq_len.unwrap_or(256),
            length: match (self.iters, self.epochs) {
                (Some(n), _) => Length::Iters(n),
                (None, e) => Length::Epochs(e.unwrap_or(1)),
            },
            seed: self.seed.unwrap_or(0),
            train_on_prompt: self.train_on_prompt.unwrap_or(false),
            eval_every: self.eval_every.unwrap_or(50),
            eval_batches: self.eval_batches.unwrap_or(8),
            save_every: self.save_every.unwrap_or(100),
            patience: self.patience.unwrap_or(0),
            init_adapter: self.init_adapter.clone(),
        };
        if config.rank == 0 || config.batch_size == 0 || config.grad_accumulation == 0 || config.max_seq_len < 2 {
            return bad("rank, batch_size and grad_accumulation must be positive and max_seq_len at least 2".into());
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return bad(format!("dropout {} must be in [0, 1)", config.dropout));
        }
        if config.eval_every == 0 || config.save_every == 0 {
            return bad("eval_every and save_every must be positive".into());
        }
        Ok(config)
    }
}

/// Where a run writes: the adapter and its logs in `out`, checkpoints below it.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub out: PathBuf,
}

impl RunPaths {
    pub fn checkpoints(&self) -> PathBuf {
        self.out.join("checkpoints")
    }
    pub fn metrics(&self) -> PathBuf {
        self.out.join("metrics.jsonl")
    }
    pub fn plot(&self) -> PathBuf {
        self.out.join("loss.svg")
    }
    pub fn config(&self) -> PathBuf {
        self.out.join("training_config.toml")
    }
}
