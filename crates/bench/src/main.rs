//! `airlock-bench`: airlock against llama.cpp (through llama-cpp-python) on the same GGUF, the same
//! prompt token ids and the same thread count. Each repetition runs each engine in a child process
//! of its own, interleaved (airlock, peer, airlock, peer...) so both see the same machine load,
//! and the table reports medians and the ratio airlock / llama.cpp.
//!
//! `bash bench/setup_peer.sh && cargo run --release -p airlock-bench -- --reps 5`
//!
//! A child prints one JSON [`Measurement`] line: load time, prefill of the whole prompt, time to
//! the first greedy token, greedy decoding of the rest, and its own peak RSS (`VmHWM`).

mod airlock_side;
mod measurement;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;

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
    /// Print the prompt's token ids (comma-separated, for running a child by hand) and exit.
    #[arg(long)]
    print_ids: bool,
}

#[derive(Subcommand, Debug)]
enum Child {
    /// (internal) Measures airlock in this process and prints one JSON line.
    Airlock {
        /// Comma-separated prompt token ids.
        #[arg(long)]
        ids: String,
        #[arg(long)]
        gen_tokens: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let model = match &cli.model {
        Some(path) => path.clone(),
        None => airlock_store::resolve_model(None, true)?,
    };
    if let Some(Child::Airlock { ids, gen_tokens }) = &cli.child {
        let ids = parse_ids(ids)?;
        let m = airlock_side::measure(&model, cli.threads, &ids, *gen_tokens)?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    compare(&cli, &model)
}

fn compare(cli: &Cli, model: &Path) -> anyhow::Result<()> {
    let ids = airlock_side::prompt_ids(model, cli.prompt_tokens)?;
    let ids_arg = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
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
    let mut airlock = Vec::new();
    let mut llamacpp = Vec::new();
    for rep in 0..cli.reps {
        let mut a = Command::new(&exe);
        a.arg("--model")
            .arg(model)
            .arg("--threads")
            .arg(cli.threads.to_string());
        a.args([
            "airlock",
            "--ids",
            &ids_arg,
            "--gen-tokens",
            &cli.gen_tokens.to_string(),
        ]);
        airlock.push(run_child(a, "airlock")?);
        if peer {
            let mut p = Command::new(&cli.python);
            p.arg(&cli.peer).arg("--model").arg(model);
            p.args(["--threads", &cli.threads.to_string(), "--ids", &ids_arg]);
            p.args(["--gen-tokens", &cli.gen_tokens.to_string()]);
            llamacpp.push(run_child(p, "llama.cpp")?);
        }
        eprintln!("rep {}/{} done", rep + 1, cli.reps);
    }
    println!(
        "{}",
        report::table(model, cli.threads, ids.len(), cli.gen_tokens, &airlock, &llamacpp)
    );
    Ok(())
}

/// Runs one child to the end and parses the JSON line it prints last.
fn run_child(mut cmd: Command, name: &str) -> anyhow::Result<Measurement> {
    let out = cmd.output().with_context(|| format!("starting the {name} child"))?;
    if !out.status.success() {
        bail!(
            "the {name} child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("the child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("parsing the {name} child's line {line:?}"))
}

fn parse_ids(ids: &str) -> anyhow::Result<Vec<u32>> {
    ids.split(',')
        .map(|s| s.trim().parse::<u32>().with_context(|| format!("token id {s:?}")))
        .collect()
}
