//! The serving engine: a bounded request queue and one worker thread that owns the model and
//! batches continuously (Yu et al., 2022, "Orca"). New requests are prefilled one at a time;
//! then every active row advances by one token in a single forward pass over the shared base
//! weights, each row with its own adapters, sampler and constraint. A row whose receiver is
//! gone (the client disconnected) is dropped at the next step.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use airlock_model::{KvCache, Llama, LlamaConfig, LoraBatch};
use airlock_tokenizer::Tokenizer;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::generate::capacity;
use crate::{EngineError, FinishReason, Request, Sequence, Token};

/// How many requests run at once and how many may wait.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    pub max_batch: usize,
    pub queue_capacity: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_batch: 8,
            queue_capacity: 64,
        }
    }
}

/// What a request's receiver gets: tokens as they are sampled, then one `Done` or `Error`.
#[derive(Debug)]
pub enum Event {
    Token(Token),
    Done(Finished),
    Error(EngineError),
}

/// Counts and timings of a finished request (Ollama's final-chunk fields, OpenAI's `usage`).
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Waiting in the queue.
    pub queue_duration: Duration,
    pub prompt_duration: Duration,
    pub generate_duration: Duration,
}

/// Live counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub queued: AtomicUsize,
    pub active: AtomicUsize,
    pub requests_finished: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
}

struct Job {
    request: Request,
    events: UnboundedSender<Event>,
    submitted: Instant,
}

/// A handle to the engine; clones share it. The worker stops when every handle is dropped,
/// after finishing the rows it has.
#[derive(Clone)]
pub struct Engine {
    jobs: SyncSender<Job>,
    tokenizer: Arc<Tokenizer>,
    config: LlamaConfig,
    metrics: Arc<Metrics>,
    worker: Arc<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn start(model: Llama, tokenizer: Arc<Tokenizer>, options: EngineOptions) -> Self {
        let (jobs, queue) = std::sync::mpsc::sync_channel(options.queue_capacity);
        let metrics = Arc::new(Metrics::default());
        let config = model.config().clone();
        let worker = Worker {
            model,
            tokenizer: Arc::clone(&tokenizer),
            metrics: Arc::clone(&metrics),
            options,
        };
        let worker = std::thread::Builder::new()
            .name("airlock-engine".into())
            .spawn(move || worker.run(queue))
            .expect("the engine thread starts");
        Self {
            jobs,
            tokenizer,
            config,
            metrics,
            worker: Arc::new(worker),
        }
    }

    /// Queues `request`; events arrive on the returned receiver. Dropping the receiver cancels.
    pub fn submit(&self, request: Request) -> Result<UnboundedReceiver<Event>, EngineError> {
        capacity(&request, self.config.context_length)?;
        let (events, receiver) = unbounded_channel();
        let job = Job {
            request,
            events,
            submitted: Instant::now(),
        };
        self.metrics.queued.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(e) => {
                self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => EngineError::QueueFull,
                    TrySendError::Disconnected(_) => EngineError::Stopped,
                })
            }
        }
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// True while the worker thread runs.
    pub fn is_running(&self) -> bool {
        !self.worker.is_finished()
    }
}

struct Worker {
    model: Llama,
    tokenizer: Arc<Tokenizer>,
    metrics: Arc<Metrics>,
    options: EngineOptions,
}

/// A request in the batch (its KV cache sits at the same index in the batch's caches).
struct Row {
    job: Job,
    sequence: Sequence,
    /// The token to feed at the next step.
    last: u32,
    queue_duration: Duration,
    prompt_duration: Duration,
    decode_started: Instant,
    deadline: Option<Instant>,
}

impl Worker {
    fn run(self, queue: Receiver<Job>) {
        let mut rows: Vec<Row> = Vec::new();
        let mut caches: Vec<KvCache> = Vec::new();
        let mut open = true;
        loop {
            while open && rows.len() < self.options.max_batch {
                let job = if rows.is_empty() {
                    queue.recv().map_err(|_| TryRecvError::Disconnected)
                } else {
                    queue.try_recv()
                };
                match job {
                    Ok(job) => {
                        self.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                        if let Some((row, cache)) = self.prefill(job) {
                            rows.push(row);
                            caches.push(cache);
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if rows.is_empty() {
                if open {
                    continue;
                }
                return;
            }
            self.metrics.active.store(rows.len(), Ordering::Relaxed);
            self.step(&mut rows, &mut caches);
            self.metrics.active.store(rows.len(), Ordering::Relaxed);
        }
    }

    /// Runs the prompt and samples the first token; `None` when the request already ended.
    fn prefill(&self, mut job: Job) -> Option<(Row, KvCache)> {
        let queue_duration = job.submitted.elapsed();
        if job.events.is_closed() {
            return None;
        }
        let cap = match capacity(&job.request, self.model.config().context_length) {
            Ok(cap) => cap,
            Err(e) => {
                let _ = job.events.send(Event::Error(e));
                return None;
            }
        };
        let started = Instant::now();
        let mut cache = self.model.new_cache(cap);
        let lora = LoraBatch::uniform(job.request.adapters.clone());
        let mut logits = self.model.next_logits_with(&job.request.prompt, &mut cache, &lora);
        self.metrics
            .prompt_tokens
            .fetch_add(job.request.prompt.len() as u64, Ordering::Relaxed);
        let sequence = Sequence::new(&mut job.request, &self.tokenizer);
        let deadline = job.request.timeout.map(|t| job.submitted + t);
        let row = Row {
            job,
            sequence,
            last: 0,
            queue_duration,
            prompt_duration: started.elapsed(),
            decode_started: Instant::now(),
            deadline,
        };
        let room = cache.len() < cache.capacity();
        self.advance(row, &mut logits, room).map(|row| (row, cache))
    }

    /// One decoding step for every row, sharing one forward pass; finished rows leave the batch.
    fn step(&self, rows: &mut Vec<Row>, caches: &mut Vec<KvCache>) {
        let tokens: Vec<u32> = rows.iter().map(|r| r.last).collect();
        let lora = LoraBatch::per_row(rows.iter().map(|r| r.job.request.adapters.clone()).collect());
        let logits = self.model.step(&tokens, caches, &lora);
        let mut kept = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for ((row, cache), mut logits) in rows.drain(..).zip(caches.drain(..)).zip(logits) {
            let room = cache.len() < cache.capacity();
            if let Some(row) = self.advance(row, &mut logits, room) {
                kept.0.push(row);
                kept.1.push(cache);
            }
        }
        (*rows, *caches) = kept;
    }

    /// Samples a row's next token from `logits` and sends it; `None` when the row is finished.
    fn advance(&self, mut row: Row, logits: &mut [f32], room: bool) -> Option<Row> {
        if row.job.events.is_closed() {
            return self.finish(row, FinishReason::Cancelled);
        }
        if row.deadline.is_some_and(|d| Instant::now() > d) {
            let _ = row.job.events.send(Event::Error(EngineError::Timeout));
            return self.finish(row, FinishReason::Cancelled);
        }
        match row.sequence.next(&self.tokenizer, logits, room) {
            Ok((token, finish)) => {
                self.metrics.generated_tokens.fetch_add(1, Ordering::Relaxed);
                row.last = token.id;
                if row.job.events.send(Event::Token(token)).is_err() {
                    return self.finish(row, FinishReason::Cancelled);
                }
                match finish {
                    Some(reason) => self.finish(row, reason),
                    None => Some(row),
                }
            }
            Err(e) => {
                let _ = row.job.events.send(Event::Error(e));
                self.finish(row, FinishReason::Cancelled)
            }
        }
    }

    fn finish(&self, row: Row, reason: FinishReason) -> Option<Row> {
        self.metrics.requests_finished.fetch_add(1, Ordering::Relaxed);
        let _ = row.job.events.send(Event::Done(Finished {
            reason,
            prompt_tokens: row.job.request.prompt.len(),
            completion_tokens: row.sequence.generated(),
            queue_duration: row.queue_duration,
            prompt_duration: row.prompt_duration,
            generate_duration: row.decode_started.elapsed(),
        }));
        None
    }
}
