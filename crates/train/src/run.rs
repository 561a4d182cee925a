//! The training loop: masked cross-entropy through the frozen base, gradients only for the
//! LoRA factors, AdamW with warmup and a cosine or constant schedule, gradient clipping and
//! accumulation, periodic validation with early stopping, checkpoints, and a metrics log.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use airlock_adapter::{load_peft, save_peft};
use airlock_model::{Dropout, Llama, LlamaConfig, LoraBatch, ModelError, Precision, WeightSource, default_device};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::batching::Schedule as Batches;
use crate::checkpoint::{self, LoopState};
use crate::config::{Length, RunPaths, Schedule};
use crate::data::{Dataset, Example};
use crate::{LoraState, TrainConfig, TrainError};

/// How a run is driven from outside.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Continue from the newest checkpoint in `out/checkpoints` if there is one.
    pub resume: bool,
    pub progress: bool,
    /// Set (by Ctrl-C) to save a checkpoint and stop after the current step.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub steps: usize,
    pub last_loss: f64,
    pub best_valid_loss: Option<f64>,
    pub tokens_per_second: f64,
    pub early_stopped: bool,
    pub interrupted: bool,
}

#[derive(Serialize)]
struct StepLog {
    step: usize,
    epoch: usize,
    loss: f64,
    lr: f64,
    grad_norm: f64,
    tokens: usize,
    tokens_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_loss: Option<f64>,
}

/// Learning rate at optimizer step `step` (0-based).
pub fn learning_rate(config: &TrainConfig, step: usize, total: usize) -> f64 {
    let lr = config.learning_rate;
    if step < config.warmup_steps {
        return lr * (step + 1) as f64 / config.warmup_steps as f64;
    }
    match config.schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => {
            let span = total.saturating_sub(config.warmup_steps).max(1) as f64;
            let t = (step - config.warmup_steps) as f64 / span;
            lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

/// Total optimizer steps of a run.
pub fn total_steps(config: &TrainConfig, batches_per_epoch: usize) -> usize {
    match config.length {
        Length::Iters(n) => n,
        Length::Epochs(e) => e * batches_per_epoch.div_ceil(config.grad_accumulation),
    }
}

/// Mean cross-entropy over the learned tokens of `batch` (right-padded), and their count.
/// The output projection runs only at the learned positions: with the prompt masked, most
/// positions need no logits, and the `[positions, vocab]` matrix is the largest activation.
pub fn batch_loss(model: &Llama, lora: &LoraBatch, batch: &[&Example]) -> (Tensor<1>, usize) {
    let device = model.device();
    let len = batch.iter().map(|e| e.tokens.len()).max().unwrap_or(2).max(2);
    let (b, n) = (batch.len(), len - 1);
    let mut inputs = Vec::with_capacity(b * n);
    let mut learned = Vec::new(); // flat positions in [b * n] whose next token is learned
    let mut targets = Vec::new();
    for (row, e) in batch.iter().enumerate() {
        for i in 0..n {
            inputs.push(*e.tokens.get(i).unwrap_or(&0) as i64);
            if i + 1 < e.tokens.len() && e.learn[i + 1] {
                learned.push((row * n + i) as i64);
                targets.push(e.tokens[i + 1] as i64);
            }
        }
    }
    let count = learned.len();
    if count == 0 {
        return (Tensor::zeros([1], device), 0);
    }
    let inputs: Tensor<2, Int> = Tensor::from_data(TensorData::new(inputs, [b, n]), device);
    let learned: Tensor<1, Int> = Tensor::from_data(TensorData::new(learned, [count]), device);
    let targets: Tensor<2, Int> = Tensor::from_data(TensorData::new(targets, [count, 1]), device);
    let mut caches: Vec<_> = (0..b).map(|_| model.new_cache(n)).collect();
    let hidden = model.forward(inputs, &mut caches, lora); // [b, n, dim]
    let dim = hidden.dims()[2];
    let hidden = hidden.reshape([b * n, dim]).select(0, learned).unsqueeze::<3>(); // [1, count, dim]
    let logits = model.logits(hidden).squeeze::<2>(); // [count, vocab]
    let picked = log_softmax(logits, 1).gather(1, targets); // [count, 1]
    let loss = picked.sum().neg() / count as f32;
    (loss, count)
}

/// Mean validation loss over up to `batches` batches (in a fixed, length-sorted order), the
/// batches side by side on the workers.
fn validate(model: &Llama, state: &LoraState, valid: &[Example], config: &TrainConfig, workers: &Workers) -> f64 {
    let lora = LoraBatch::uniform(vec![(state.frozen_weights(), 1.0)]);
    let mut order: Vec<&Example> = valid.iter().collect();
    order.sort_by_key(|e| e.tokens.len());
    let batches: Vec<&[&Example]> = order.chunks(config.batch_size).take(config.eval_batches).collect();
    let costs: Vec<usize> = batches.iter().map(|b| b.iter().map(|e| e.tokens.len()).sum()).collect();
    let losses = workers.map(&costs, |i| {
        let (loss, n) = batch_loss(model, &lora, batches[i]);
        (loss.detach().into_scalar::<f32>() as f64 * n as f64, n)
    });
    let (total, count) = losses.into_iter().fold((0.0, 0), |(t, c), (l, n)| (t + l, c + n));
    total / count.max(1) as f64
}

/// The frozen base as training needs it: on the autodiff device, its projections in the file's
/// blocks where the CPU has kernels for them (QLoRA), dequantized elsewhere.
pub fn load_base(source: &dyn WeightSource) -> Result<Llama, ModelError> {
    Llama::load_with(source, &default_device().autodiff(), Precision::Packed)
}

/// Trains an adapter on `dataset`; the base `model` comes from [`load_base`], so gradients
/// reach every layer's factors.
pub fn train(
    model: &Llama,
    dataset: &Dataset,
    config: &TrainConfig,
    paths: &RunPaths,
    options: &RunOptions,
) -> Result<Summary, TrainError> {
    if dataset.train.is_empty() {
        return Err(TrainError::NoData);
    }
    let device = model.device().clone();
    let base = model.config();
    let ckpt_dir = paths.checkpoints();
    let resumed = options.resume.then(|| checkpoint::latest(&ckpt_dir)).flatten();
    let (mut state, mut counters) = match &resumed {
        Some(path) => checkpoint::load(path, base, &device)?,
        None => (initial_state(base, config, &device)?, LoopState::default()),
    };
    let mut batches = Batches::new(&dataset.train, config.batch_size, config.seed);
    let total = total_steps(config, batches.batches_per_epoch());
    let mut log = MetricsLog::open(paths, counters.step, resumed.is_some())?;
    let bar = progress_bar(options.progress, total, counters.step);
    let workers = Workers::new(config.batch_size);
    let started = Instant::now();
    let (mut tokens_seen, mut last_loss) = (0usize, f64::NAN);
    let (mut early_stopped, mut interrupted) = (false, false);

    while counters.step < total {
        if options.stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let step = counters.step;
        let mut grads: Option<Vec<Tensor<2>>> = None;
        let (mut loss_sum, mut epoch, mut step_tokens) = (0.0, 0, 0);
        for k in 0..config.grad_accumulation {
            let (e, indices) = batches.at(step * config.grad_accumulation + k);
            epoch = e;
            let batch: Vec<&Example> = indices.iter().map(|&i| &dataset.train[i]).collect();
            step_tokens += batch.iter().map(|e| e.tokens.len()).sum::<usize>();
            // The batch's token-mean loss, one sequence per pass: each example's mean weighted
            // by its share of the batch's learned tokens sums to the same loss and gradients,
            // while no position is spent on padding. Passes run side by side on the workers
            // and are summed in example order, so the result does not depend on which ran where.
            let learned: usize = batch.iter().map(|e| e.learned_tokens()).sum();
            let costs: Vec<usize> = batch.iter().map(|e| e.tokens.len()).collect();
            let passes = workers.map(&costs, |i| {
                // Dropout masks: a function of the run's seed, the batch and the example.
                let seed = config.seed ^ ((step * config.grad_accumulation + k) * 1024 + i) as u64;
                let dropout = Dropout {
                    rate: config.dropout,
                    seed: seed.wrapping_mul(0xD1B5_4A32_D192_ED03),
                };
                let (weights, leaves) = state.pass(dropout);
                let (loss, n) = batch_loss(model, &LoraBatch::uniform(vec![(weights, 1.0)]), &[batch[i]]);
                let loss = loss * (n as f64 / learned.max(1) as f64);
                let gradients = loss.backward();
                let these: Vec<Tensor<2>> = leaves
                    .iter()
                    .map(|p| p.grad(&gradients).unwrap_or_else(|| p.zeros_like().inner()))
                    .collect();
                (loss.detach().into_scalar::<f32>() as f64, these)
            });
            for (loss, these) in passes {
                loss_sum += loss;
                grads = Some(match grads {
                    None => these,
                    Some(acc) => acc.into_iter().zip(these).map(|(a, g)| a + g).collect(),
                });
            }
        }
        let scale = 1.0 / config.grad_accumulation as f64;
        let grads = grads.unwrap_or_default().into_iter().map(|g| g * scale).collect();
        let lr = learning_rate(config, step, total);
        let grad_norm = state.apply(grads, lr, config.weight_decay, config.max_grad_norm);
        counters.step += 1;
        last_loss = loss_sum * scale;
        tokens_seen += step_tokens;
        let tokens_per_second = tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);

        let mut valid_loss = None;
        if !dataset.valid.is_empty() && (counters.step % config.eval_every == 0 || counters.step == total) {
            let v = validate(model, &state, &dataset.valid, config, &workers);
            valid_loss = Some(v);
            if counters.best_valid_loss.is_none_or(|best| v < best) {
                counters.best_valid_loss = Some(v);
                counters.evals_without_improvement = 0;
                save_peft(&state.to_adapter(), &paths.out, base)?;
            } else {
                counters.evals_without_improvement += 1;
            }
        }
        log.write(&StepLog {
            step: counters.step,
            epoch,
            loss: last_loss,
            lr,
            grad_norm,
            tokens: step_tokens,
            tokens_per_second,
            valid_loss,
        })?;
        bar.set_position(counters.step as u64);
        bar.set_message(format!("loss {last_loss:.4} lr {lr:.2e} {tokens_per_second:.0} tok/s"));
        if counters.step % config.save_every == 0 {
            checkpoint::save(&ckpt_dir, &state, &counters, base)?;
        }
        if config.patience > 0 && counters.evals_without_improvement >= config.patience {
            early_stopped = true;
            break;
        }
    }
    bar.finish_and_clear();
    checkpoint::save(&ckpt_dir, &state, &counters, base)?;
    if dataset.valid.is_empty() {
        save_peft(&state.to_adapter(), &paths.out, base)?;
    }
    log.plot(paths)?;
    Ok(Summary {
        steps: counters.step,
        last_loss,
        best_valid_loss: counters.best_valid_loss,
        tokens_per_second: tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
        early_stopped,
        interrupted,
    })
}

/// Fresh factors, or those of `config.init_adapter` when its rank, alpha, targets and layers
/// are this run's (its moments start at zero: a new run, not a resumed one).
fn initial_state(base: &LlamaConfig, config: &TrainConfig, device: &Device) -> Result<LoraState, TrainError> {
    let fresh = LoraState::init(base, config, device);
    let Some(dir) = &config.init_adapter else {
        return Ok(fresh);
    };
    let mut loaded = LoraState::from_adapter(&load_peft(dir, base)?, device);
    let shape = |s: &LoraState| {
        let mut keys: Vec<_> = s.factors.iter().map(|(layer, w, ..)| (*layer, *w)).collect();
        keys.sort();
        (s.lora.r, s.lora.alpha.to_bits(), s.lora.use_rslora, keys)
    };
    if shape(&loaded) != shape(&fresh) {
        return Err(TrainError::Option(format!(
            "init_adapter {}: its rank ({}), alpha ({}), rsLoRA ({}), targets or layers differ from this run's \
             (rank {}, alpha {}, rsLoRA {})",
            dir.display(),
            loaded.lora.r,
            loaded.lora.alpha,
            loaded.lora.use_rslora,
            fresh.lora.r,
            fresh.lora.alpha,
            fresh.lora.use_rslora
        )));
    }
    loaded.lora = fresh.lora;
    Ok(loaded)
}

/// The machine's threads as a few rayon pools, one forward/backward pass on each at a time.
/// A pass of one sequence of a few hundred tokens leaves much of a second core idle (its
/// elementwise ops, allocations and autodiff bookkeeping run on one thread), and gemm splits
/// small products poorly; passes side by side keep every core busy. With more threads than
/// examples in a batch, each pool gets several threads.
struct Workers(Vec<rayon::ThreadPool>);

impl Workers {
    fn new(batch_size: usize) -> Self {
        let threads = rayon::current_num_threads();
        let pools = threads.min(batch_size).max(1);
        let pools = (0..pools)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads / pools + usize::from(i < threads % pools))
                    .thread_name(move |t| format!("train-{i}-{t}"))
                    .build()
                    .expect("the OS starts training threads")
            })
            .collect();
        Self(pools)
    }

    /// `f(i)` for each `i` in `0..costs.len()`, in that order; the items go to the pools longest
    /// first, each to the least loaded pool.
    fn map<T: Send>(&self, costs: &[usize], f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let mut order: Vec<usize> = (0..costs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
        let (mut load, mut queues) = (vec![0; self.0.len()], vec![Vec::new(); self.0.len()]);
        for i in order {
            let pool = (0..load.len()).min_by_key(|&p| load[p]).expect("at least one pool");
            load[pool] += costs[i];
            queues[pool].push(i);
        }
        let mut results: Vec<Option<T>> = costs.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let f = &f;
            let running: Vec<_> = self
                .0
                .iter()
                .zip(&queues)
                .map(|(pool, queue)| {
                    scope.spawn(move || pool.install(|| queue.iter().map(|&i| (i, f(i))).collect::<Vec<_>>()))
                })
                .collect();
            for handle in running {
                let done = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        });
        results.into_iter().map(|r| r.expect("every item ran")).collect()
    }
}

fn progress_bar(enabled: bool, total: usize, at: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps | {msg} | ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(at as u64);
    bar
}

/// `metrics.jsonl`: one line per step. A resumed run first drops lines past its checkpoint, so
/// the log reads as one uninterrupted run.
struct MetricsLog {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    fn open(paths: &RunPaths, keep_through: usize, resumed: bool) -> Result<Self, TrainError> {
        let path = paths.metrics();
        let io = |source| TrainError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&paths.out).map_err(|source| TrainError::Io {
            path: paths.out.clone(),
            source,
        })?;
        let kept: Vec<String> = if resumed {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s as usize <= keep_through)
                })
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        airlock_adapter::write_atomic(&path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(Self { path, file })
    }

    fn write(&mut self, line: &StepLog) -> Result<(), TrainError> {
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn plot(&self, paths: &RunPaths) -> Result<(), TrainError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })?;
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let step = v["step"].as_u64().unwrap_or(0) as usize;
            if let Some(l) = v["loss"].as_f64() {
                train.push((step, l));
            }
            if let Some(l) = v["valid_loss"].as_f64() {
                valid.push((step, l));
            }
        }
        airlock_adapter::write_atomic(&paths.plot(), crate::plot::loss_svg(&train, &valid).as_bytes())?;
        Ok(())
    }
}
