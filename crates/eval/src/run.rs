//! Running a model variant (the base, or the base with adapters) over every example: greedy
//! generation through the batching engine (constrained when the task's output is JSON), and
//! teacher-forced loss on the references for perplexity.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_engine::{Engine, EngineOptions, Event, Request};
use airlock_model::{AdapterSet, Llama, LoraBatch};
use airlock_tokenizer::{ChatMessage, Tokenizer};
use airlock_train::data::{Example, Record, tokenize};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::EvalError;
use crate::dataset::{EvalExample, Prompt};
use crate::metrics::{self, FieldScores, ItemCounts, wilson};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    Exact,
    JsonFields,
    Contains,
    Perplexity,
}

impl Metric {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "exact" => Some(Self::Exact),
            "json-fields" => Some(Self::JsonFields),
            "contains" => Some(Self::Contains),
            "perplexity" => Some(Self::Perplexity),
            _ => None,
        }
    }
}

/// One value of a report, with its 95% interval for rates.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Score {
    pub value: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub n: usize,
}

impl Score {
    fn rate(k: usize, n: usize) -> Self {
        let (low, high) = wilson(k, n);
        Self {
            value: k as f64 / n.max(1) as f64,
            low: Some(low),
            high: Some(high),
            n,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExampleResult {
    pub index: usize,
    pub output: String,
    pub expected: String,
    /// Whether the example passed the task's main metric.
    pub passed: bool,
    pub finish: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantReport {
    pub name: String,
    pub scores: BTreeMap<String, Score>,
    /// List fields of JSON answers: each item's tally over the dataset.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<String, BTreeMap<String, ItemCounts>>,
    pub examples: Vec<ExampleResult>,
    pub seconds: f64,
}

/// What to measure and how to decode.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub metrics: Vec<Metric>,
    pub constraint: Option<Constraint>,
    pub max_tokens: usize,
    pub progress: bool,
}

fn prompt_tokens(tokenizer: &Tokenizer, prompt: &Prompt) -> Result<Vec<u32>, EvalError> {
    Ok(match prompt {
        Prompt::Chat(messages) => tokenizer.apply_chat_template(messages, true)?,
        Prompt::Raw(text) => tokenizer.prompt_tokens(text)?,
    })
}

/// The prompt and reference as a training example, for teacher-forced loss.
fn reference_example(tokenizer: &Tokenizer, ex: &EvalExample) -> Result<Example, EvalError> {
    let record = match &ex.prompt {
        Prompt::Chat(messages) => {
            let mut all = messages.clone();
            all.push(ChatMessage {
                role: "assistant".into(),
                content: ex.reference.clone(),
            });
            Record::Chat(all)
        }
        Prompt::Raw(prompt) => Record::Completion {
            prompt: prompt.clone(),
            completion: ex.reference.clone(),
        },
    };
    Ok(tokenize(&record, tokenizer, false)?)
}

/// Mean loss per reference token, and its exponential.
pub fn perplexity(
    model: &Llama,
    tokenizer: &Tokenizer,
    examples: &[EvalExample],
    adapters: &AdapterSet,
) -> Result<(f64, f64), EvalError> {
    let lora = LoraBatch::uniform(adapters.clone());
    let tokenized = examples
        .iter()
        .map(|e| reference_example(tokenizer, e))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<&Example> = tokenized.iter().collect();
    order.sort_by_key(|e| e.tokens.len());
    let (mut total, mut count) = (0.0, 0usize);
    for batch in order.chunks(4) {
        let (loss, n) = airlock_train::batch_loss(model, &lora, batch);
        total += loss.into_scalar::<f32>() as f64 * n as f64;
        count += n;
    }
    let mean = total / count.max(1) as f64;
    Ok((mean, mean.exp()))
}

/// Generates an answer for every example with `adapters` and scores it.
pub fn evaluate(
    engine: &Engine,
    compiler: &ConstraintCompiler,
    name: &str,
    adapters: &AdapterSet,
    examples: &[EvalExample],
    options: &EvalOptions,
) -> Result<VariantReport, EvalError> {
    let tokenizer = Arc::clone(engine.tokenizer());
    let started = Instant::now();
    let bar = if options.progress {
        ProgressBar::new(examples.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!("{name:>20} {{bar:30}} {{pos}}/{{len}} ETA {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut receivers = Vec::with_capacity(examples.len());
    for ex in examples {
        let constraint = options.constraint.as_ref().map(|c| compiler.compile(c)).transpose()?;
        let request = Request {
            prompt: prompt_tokens(&tokenizer, &ex.prompt)?,
            max_tokens: options.max_tokens,
            adapters: adapters.clone(),
            constraint,
            ..Request::default()
        };
        receivers.push(engine.submit(request)?);
    }
    let mut outputs = Vec::with_capacity(examples.len());
    for mut rx in receivers {
        let (mut text, mut tokens, mut finish) = (String::new(), Vec::new(), "none".to_string());
        while let Some(event) = rx.blocking_recv() {
            match event {
                Event::Token(t) => {
                    text.push_str(&t.text);
                    tokens.push(t.id);
                }
                Event::Done(done) => {
                    finish = done.reason.as_str().to_string();
                    break;
                }
                Event::Error(e) => return Err(e.into()),
            }
        }
        bar.inc(1);
        outputs.push((text, tokens, finish));
    }
    bar.finish_and_clear();
    Ok(score(
        name,
        examples,
        outputs,
        options,
        compiler,
        started.elapsed().as_secs_f64(),
    ))
}

fn score(
    name: &str,
    examples: &[EvalExample],
    outputs: Vec<(String, Vec<u32>, String)>,
    options: &EvalOptions,
    compiler: &ConstraintCompiler,
    seconds: f64,
) -> VariantReport {
    let n = examples.len();
    let mut scores = BTreeMap::new();
    let mut items = BTreeMap::new();
    let mut passed = vec![true; n];
    for metric in &options.metrics {
        match metric {
            Metric::Exact => {
                let hits: Vec<bool> = examples
                    .iter()
                    .zip(&outputs)
                    .map(|(e, o)| metrics::exact(&o.0, &e.reference))
                    .collect();
                record(&mut scores, &mut passed, "exact", &hits, true);
            }
            Metric::Contains => {
                let hits: Vec<bool> = examples
                    .iter()
                    .zip(&outputs)
                    .map(|(e, o)| metrics::contains(&o.0, e.answer.as_deref().unwrap_or(&e.reference)))
                    .collect();
                record(&mut scores, &mut passed, "contains", &hits, true);
            }
            Metric::JsonFields => {
                let fields: Vec<FieldScores> = examples
                    .iter()
                    .zip(&outputs)
                    .map(|(e, o)| metrics::json_fields(&o.0, &e.reference))
                    .collect();
                record(
                    &mut scores,
                    &mut passed,
                    "json_valid",
                    &fields.iter().map(|f| f.valid_json).collect::<Vec<_>>(),
                    false,
                );
                if let Some(c) = &options.constraint {
                    let valid: Vec<bool> = outputs.iter().map(|o| schema_valid(compiler, c, &o.1)).collect();
                    record(&mut scores, &mut passed, "schema_valid", &valid, false);
                }
                let keys: Vec<String> = fields.iter().flat_map(|f| f.fields.keys().cloned()).collect();
                let keys: std::collections::BTreeSet<String> = keys.into_iter().collect();
                for key in &keys {
                    let hits: Vec<bool> = fields
                        .iter()
                        .map(|f| f.fields.get(key).copied().unwrap_or(false))
                        .collect();
                    record(&mut scores, &mut passed, &format!("field.{key}"), &hits, true);
                    let lists: Vec<_> = fields.iter().filter_map(|f| f.lists.get(key)).collect();
                    if !lists.is_empty() {
                        let tally: &mut BTreeMap<String, ItemCounts> = items.entry(key.clone()).or_default();
                        for (want, got) in &lists {
                            ItemCounts::tally(tally, want, got);
                        }
                        let tp: usize = tally.values().map(|c| c.found).sum();
                        let exp: usize = tally.values().map(|c| c.expected).sum();
                        let pred = tp + tally.values().map(|c| c.added).sum::<usize>();
                        let p = tp as f64 / pred.max(1) as f64;
                        let r = tp as f64 / exp.max(1) as f64;
                        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
                        for (suffix, value) in [("precision", p), ("recall", r), ("f1", f1)] {
                            scores.insert(
                                format!("field.{key}.{suffix}"),
                                Score {
                                    value,
                                    low: None,
                                    high: None,
                                    n,
                                },
                            );
                        }
                    }
                }
            }
            Metric::Perplexity => {} // filled in by the caller, which holds the model
        }
    }
    let examples = examples
        .iter()
        .zip(outputs)
        .enumerate()
        .map(|(index, (e, (output, _, finish)))| ExampleResult {
            index,
            output,
            expected: e.answer.clone().unwrap_or_else(|| e.reference.clone()),
            passed: passed[index],
            finish,
        })
        .collect();
    VariantReport {
        name: name.to_string(),
        scores,
        items,
        examples,
        seconds,
    }
}

/// Adds the rate of `hits` as `key`; a primary metric also decides which examples passed.
fn record(scores: &mut BTreeMap<String, Score>, passed: &mut [bool], key: &str, hits: &[bool], primary: bool) {
    scores.insert(
        key.to_string(),
        Score::rate(hits.iter().filter(|&&h| h).count(), hits.len()),
    );
    if primary {
        for (p, h) in passed.iter_mut().zip(hits) {
            *p &= *h;
        }
    }
}

/// Whether `tokens` form a complete value of the constraint (replayed through a fresh matcher).
fn schema_valid(compiler: &ConstraintCompiler, constraint: &Constraint, tokens: &[u32]) -> bool {
    let Ok(mut matcher) = compiler.compile(constraint) else {
        return false;
    };
    for &t in tokens {
        if compiler.eog_ids().contains(&t) {
            break;
        }
        if matcher.consume(t).is_err() {
            return false;
        }
    }
    matcher.is_accepting()
}

/// Starts an engine sized for a whole evaluation split.
pub fn start_engine(model: Llama, tokenizer: Arc<Tokenizer>, examples: usize) -> Engine {
    Engine::start(
        model,
        tokenizer,
        EngineOptions {
            max_batch: 8,
            queue_capacity: examples.max(1),
        },
    )
}
