//! `airlock-bench`: airlock against llama.cpp (through llama-cpp-python) on the same GGUF, the same
//! prompt token ids and the same thread count. Each repetition runs each engine in a child process
//! of its own, interleaved (airlock, peer, airlock, peer...) so both see the same machine load,
//! and the table reports medians and the ratio airlock / llama.cpp.
//!
//! `bash bench/setup_peer.sh && cargo run --release -p airlock-bench -- --reps 5`
//!
//! Structured-output workloads follow: greedy decoding constrained to any JSON object (airlock's
//! llguidance mask against llama.cpp's own JSON grammar), then to a JSON Schema (against the GBNF
//! grammar llama-cpp-python makes of the same schema), from a chat prompt asking for the example
//! clinical note as billing JSON, until the value is complete.
//!
//! `airlock-bench train` compares the trainer with PEFT instead (see `train.rs`).
//!
//! A child prints one JSON [`Measurement`] line: load time, prefill of the whole prompt, time to
//! the first greedy token, greedy decoding of the rest, and its own peak RSS (`VmHWM`).

mod airlock_side;
mod measurement;
mod report;
mod train;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_constrain::Constraint;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::measurement::Measurement;

#[derive(Parser, Debug)]
#[command(name = "airlock-bench", about = "airlock against llama.cpp on the same GGUF")]
struct Cli {
    #[command(subcommand)]
    child: Option<Child>,
    /// GGUF file (default: the default model in the store).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// Threads for both engines.
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Greedy tokens to generate (the first comes from the prompt pass).
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Repetitions of each engine; the table shows medians.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Python of the virtualenv that `bench/setup_peer.sh` made.
    #[arg(long, default_value = "bench/.venv/bin/python")]
    python: PathBuf,
    /// The peer's script.
    #[arg(long, default_value = "bench/llamacpp_peer.py")]
    peer: PathBuf,
    /// Run airlock only (no peer installed).
    #[arg(long)]
    airlock_only: bool,
    /// Seconds a child may run before it is stopped and the benchmark fails.
    #[arg(long, default_value_t = 120)]
    child_timeout: u64,
    /// Print the prompt's token ids (comma-separated, for running a child by hand) and exit.
    #[arg(long)]
    print_ids: bool,
    /// Structured-output workloads: `json` (any JSON object) or a JSON Schema file (repeatable).
    #[arg(long = "constraint", default_values = ["json", "configs/medical-billing.schema.json"])]
    constraints: Vec<String>,
    /// The note the structured-output prompt asks about.
    #[arg(long, default_value = "examples/billing-note.txt")]
    json_note: PathBuf,
    /// Skip the structured-output workloads.
    #[arg(long)]
    no_json: bool,
}

#[derive(Subcommand, Debug)]
enum Child {
    /// Compare airlock's trainer with PEFT on the same data.
    Train(train::TrainArgs),
    /// (internal) Trains with airlock in this process and prints one JSON line.
    AirlockTrain {
        #[arg(long)]
        batches: PathBuf,
    },
    /// (internal) Measures airlock in this process and prints one JSON line.
    Airlock {
        /// Comma-separated prompt token ids.
        #[arg(long)]
        ids: String,
        #[arg(long)]
        gen_tokens: usize,
        /// Decode under this constraint instead: `json` or a JSON Schema file.
        #[arg(long)]
        constraint: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let model = match &cli.model {
        Some(path) => path.clone(),
        None => airlock_store::resolve_model(None, true)?,
    };
    match &cli.child {
        Some(Child::Airlock {
            ids,
            gen_tokens,
            constraint,
        }) => {
            let ids = parse_ids(ids)?;
            let m = match constraint {
                Some(c) => {
                    airlock_side::measure_constrained(&model, cli.threads, &ids, *gen_tokens, parse_constraint(c)?)?
                }
                None => airlock_side::measure(&model, cli.threads, &ids, *gen_tokens)?,
            };
            println!("{}", serde_json::to_string(&m)?);
            Ok(())
        }
        Some(Child::Train(args)) => train::compare(args, &model, cli.threads),
        Some(Child::AirlockTrain { batches }) => {
            rayon::ThreadPoolBuilder::new()
                .num_threads(cli.threads)
                .build_global()?;
            let run = train::airlock_child(&model, batches)?;
            println!("{}", serde_json::to_string(&run)?);
            Ok(())
        }
        None => compare(&cli, &model),
    }
}

fn compare(cli: &Cli, model: &Path) -> anyhow::Result<()> {
    let ids = airlock_side::prompt_ids(model, cli.prompt_tokens)?;
    let ids_arg = ids_list(&ids);
    if cli.print_ids {
        println!("{ids_arg}");
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let peer = !cli.airlock_only;
    if peer && !cli.python.exists() {
        bail!(
            "{} not found: run bench/setup_peer.sh first, or pass --airlock-only",
            cli.python.display()
        );
    }
    let constraints: &[String] = if cli.no_json { &[] } else { &cli.constraints };
    for c in constraints {
        parse_constraint(c)?; // fail here, not in a child, on a bad schema
    }
    let note =
        std::fs::read_to_string(&cli.json_note).with_context(|| format!("reading {}", cli.json_note.display()))?;
    let json_ids = airlock_side::json_prompt_ids(model, &note)?;
    let json_ids_arg = ids_list(&json_ids);
    let load_before = load_average();
    let timeout = Duration::from_secs(cli.child_timeout);
    // Runs of each workload (plain, then each constraint): airlock's and the peer's.
    let mut runs: Vec<(Vec<Measurement>, Vec<Measurement>)> = vec![Default::default(); 1 + constraints.len()];
    for rep in 0..cli.reps {
        for (w, (airlock, llamacpp)) in runs.iter_mut().enumerate() {
            let (ids, constraint) = match w {
                0 => (&ids_arg, None),
                _ => (&json_ids_arg, Some(&constraints[w - 1])),
            };
            let mut a = Command::new(&exe);
            a.arg("--model")
                .arg(model)
                .arg("--threads")
                .arg(cli.threads.to_string());
            a.args(["airlock", "--ids", ids, "--gen-tokens", &cli.gen_tokens.to_string()]);
            if let Some(c) = constraint {
                a.args(["--constraint", c]);
            }
            airlock.push(run_child(a, "airlock", timeout)?);
            if peer {
                let mut p = Command::new(&cli.python);
                p.arg(&cli.peer).arg("--model").arg(model);
                p.args(["--threads", &cli.threads.to_string(), "--ids", ids]);
                p.args(["--gen-tokens", &cli.gen_tokens.to_string()]);
                if let Some(c) = constraint {
                    p.args(["--constraint", c]);
                }
                llamacpp.push(run_child(p, "llama.cpp", timeout)?);
            }
        }
        eprintln!("rep {}/{} done", rep + 1, cli.reps);
    }
    let (airlock, llamacpp) = &runs[0];
    println!(
        "{}",
        report::table(model, cli.threads, ids.len(), cli.gen_tokens, airlock, llamacpp)
    );
    for (c, (airlock, llamacpp)) in constraints.iter().zip(&runs[1..]) {
        println!("{}", report::constrained_table(c, json_ids.len(), airlock, llamacpp));
    }
    println!("load average (1 min) before {load_before}, after {}", load_average());
    Ok(())
}

/// The 1-minute load average, to record how busy the machine was.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("unknown").to_string()
}

/// Runs one child to the end (or stops it after `timeout`) and parses the JSON line it prints last.
///
/// The timeout matters for the peer: llama.cpp's threads spin-wait for each other, so when another
/// process holds one of the two cores a run can take minutes instead of seconds.
fn run_child<T: serde::de::DeserializeOwned>(mut cmd: Command, name: &str, timeout: Duration) -> anyhow::Result<T> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the {name} child"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            bail!(
                "the {name} child ran past {}s (is the machine busy? a shared core stalls spinning threads)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    if !status.success() {
        bail!("the {name} child failed ({status}): {stderr}");
    }
    let line = stdout.lines().last().context("the child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("parsing the {name} child's line {line:?}"))
}

/// Token ids as a child's `--ids` argument.
fn ids_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// `json` (any JSON object), or a JSON Schema file.
fn parse_constraint(spec: &str) -> anyhow::Result<Constraint> {
    if spec == "json" {
        return Ok(Constraint::JsonObject);
    }
    let text = std::fs::read_to_string(spec).with_context(|| format!("reading {spec}"))?;
    let schema = serde_json::from_str(&text).with_context(|| format!("parsing {spec}"))?;
    Ok(Constraint::JsonSchema(schema))
}

fn parse_ids(ids: &str) -> anyhow::Result<Vec<u32>> {
    ids.split(',')
        .map(|s| s.trim().parse::<u32>().with_context(|| format!("token id {s:?}")))
        .collect()
}
