//! `airlock eval`: accuracy of adapters (and the base with `--baseline`) on a test split, with
//! reports and thresholds; exits non-zero when a threshold is not met, so CI can gate on it.

use std::path::PathBuf;
use std::sync::Arc;

use airlock_constrain::{Constraint, ConstraintCompiler};
use airlock_eval::{EvalOptions, Gate, Metric, Report, Score};
use airlock_model::{AdapterSet, GgufSource, Llama};
use anyhow::{Context, bail};

use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A JSONL test split (chat or prompt/completion records).
    #[arg(long)]
    pub data: PathBuf,
    /// An adapter folder, or a name under adapters/ (repeatable); `NAME:SCALE` scales it.
    #[arg(long)]
    pub adapter: Vec<String>,
    /// Also evaluate the base model alone.
    #[arg(long)]
    pub baseline: bool,
    /// `json` for any JSON object, or a JSON Schema file: decoding is constrained to it.
    #[arg(long)]
    pub format: Option<String>,
    /// exact, json-fields, contains, perplexity (repeatable; default: json-fields with --format,
    /// else contains).
    #[arg(long)]
    pub metric: Vec<String>,
    /// METRIC=VALUE: every adapter must reach it (repeatable).
    #[arg(long)]
    pub min: Vec<String>,
    /// METRIC: every adapter must beat the base model on it (needs --baseline; repeatable).
    #[arg(long)]
    pub beat_baseline: Vec<String>,
    /// A TOML file of thresholds: `beat_baseline = [METRIC, ...]` and a `[min]` table of
    /// `METRIC = VALUE` (added to the flags).
    #[arg(long)]
    pub gates: Option<PathBuf>,
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long)]
    pub junit: Option<PathBuf>,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Base model (default: $AIRLOCK_MODEL or the default model).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Thresholds kept in `configs/` for CI.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GateFile {
    #[serde(default)]
    min: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    beat_baseline: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut metrics = Vec::new();
    for name in &args.metric {
        metrics.push(Metric::parse(name).with_context(|| format!("unknown metric `{name}`"))?);
    }
    if metrics.is_empty() {
        metrics.push(if args.format.is_some() {
            Metric::JsonFields
        } else {
            Metric::Contains
        });
    }
    let mut gates: Vec<Gate> = Vec::new();
    for text in &args.min {
        gates.push(Gate::parse_min(text).with_context(|| format!("--min expects METRIC=VALUE, got `{text}`"))?);
    }
    gates.extend(args.beat_baseline.iter().map(|m| Gate::BeatsBase { metric: m.clone() }));
    if let Some(path) = &args.gates {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: GateFile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        gates.extend(file.min.into_iter().map(|(metric, min)| Gate::Min { metric, min }));
        gates.extend(file.beat_baseline.into_iter().map(|metric| Gate::BeatsBase { metric }));
    }
    let constraint = match args.format.as_deref() {
        None => None,
        Some("json") => Some(Constraint::JsonObject),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading the schema {path}"))?;
            Some(Constraint::JsonSchema(
                serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?,
            ))
        }
    };

    let mut examples = airlock_eval::read_examples(&args.data)?;
    examples.truncate(args.limit.unwrap_or(usize::MAX));
    let path = loaded::resolve(args.model.as_deref())?;
    let source = GgufSource::open(&path)?;
    let tokenizer = Arc::new(airlock_tokenizer::Tokenizer::from_gguf(source.file())?);
    let model = Llama::load(&source, &airlock_model::default_device())?;
    let compiler = ConstraintCompiler::new(&tokenizer)?;

    let mut variants: Vec<(String, AdapterSet)> = Vec::new();
    if args.baseline {
        variants.push(("base".into(), Vec::new()));
    }
    for spec in &args.adapter {
        let (name, scale) = match spec.rsplit_once(':') {
            Some((n, s)) if s.parse::<f32>().is_ok() => (n, s.parse::<f32>().unwrap_or(1.0)),
            _ => (spec.as_str(), 1.0),
        };
        let dir = super::adapter_dir(name);
        let adapter = airlock_adapter::load_peft(&dir, model.config())?;
        let label = dir
            .file_name()
            .map_or(name.to_string(), |n| n.to_string_lossy().into_owned());
        variants.push((label, vec![(Arc::new(adapter.to_weights(model.device())?), scale)]));
    }
    if variants.is_empty() {
        bail!("nothing to evaluate: give --adapter and/or --baseline");
    }

    let perplexities = if metrics.contains(&Metric::Perplexity) {
        variants
            .iter()
            .map(|(_, adapters)| airlock_eval::perplexity(&model, &tokenizer, &examples, adapters))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let options = EvalOptions {
        metrics: metrics.clone(),
        constraint,
        max_tokens: args.max_tokens,
        progress: true,
    };
    let engine = airlock_eval::start_engine(model, Arc::clone(&tokenizer), examples.len());
    let mut report = Report {
        data: args.data.display().to_string(),
        variants: Vec::new(),
    };
    for (i, (name, adapters)) in variants.iter().enumerate() {
        let generate = metrics.iter().any(|m| *m != Metric::Perplexity);
        let mut variant = if generate {
            airlock_eval::evaluate(&engine, &compiler, name, adapters, &examples, &options)?
        } else {
            airlock_eval::VariantReport {
                name: name.clone(),
                ..Default::default()
            }
        };
        if let Some((loss, ppl)) = perplexities.get(i) {
            let n = examples.len();
            variant.scores.insert(
                "mean_loss".into(),
                Score {
                    value: *loss,
                    low: None,
                    high: None,
                    n,
                },
            );
            variant.scores.insert(
                "perplexity".into(),
                Score {
                    value: *ppl,
                    low: None,
                    high: None,
                    n,
                },
            );
        }
        report.variants.push(variant);
    }

    print!("{}", report.table());
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown(5))?;
    }
    let failures: Vec<String> = gates.iter().flat_map(|g| g.check(&report)).collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        bail!("{} threshold(s) not met", failures.len());
    }
    Ok(())
}
