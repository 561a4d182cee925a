//! The table: medians of each engine's runs and the ratio airlock / llama.cpp.

use std::fmt::Write;
use std::path::Path;

use crate::measurement::Measurement;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// One row: a name, how to read the figure from a run, and whether more is better.
struct Row {
    name: &'static str,
    get: fn(&Measurement) -> f64,
    higher_is_better: bool,
}

const ROWS: [Row; 5] = [
    Row {
        name: "prompt tokens/s",
        get: Measurement::prompt_tps,
        higher_is_better: true,
    },
    Row {
        name: "generation tokens/s",
        get: Measurement::gen_tps,
        higher_is_better: true,
    },
    Row {
        name: "time to first token (ms)",
        get: |m| m.ttft_s * 1e3,
        higher_is_better: false,
    },
    Row {
        name: "peak RSS (MiB)",
        get: |m| m.peak_rss_kib as f64 / 1024.0,
        higher_is_better: false,
    },
    Row {
        name: "load time (ms)",
        get: |m| m.load_s * 1e3,
        higher_is_better: false,
    },
];

/// A Markdown table of medians, with the ratio airlock / llama.cpp where the peer ran.
pub fn table(
    model: &Path,
    threads: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    airlock: &[Measurement],
    llamacpp: &[Measurement],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "model {}, {threads} threads, {prompt_tokens}-token prompt, {gen_tokens} greedy tokens, \
         medians of {} runs each (interleaved)\n",
        model.display(),
        airlock.len()
    );
    let _ = writeln!(s, "| | airlock | llama.cpp | airlock / llama.cpp |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for row in &ROWS {
        let a = median(airlock.iter().map(row.get).collect());
        let p = median(llamacpp.iter().map(row.get).collect());
        let better = if row.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(s, "| {} ({better}) | {a:.1} | {p:.1} | {:.2}x |", row.name, a / p);
    }
    if let (Some(a), Some(p)) = (airlock.first(), llamacpp.first()) {
        let same = a.tokens.iter().zip(&p.tokens).take_while(|(x, y)| x == y).count();
        let _ = writeln!(
            s,
            "\ngreedy tokens identical for the first {same} of {} positions",
            a.tokens.len().min(p.tokens.len())
        );
    }
    s
}

/// A structured-output workload: decoding speed under the constraint, medians and the ratio.
pub fn constrained_table(
    constraint: &str,
    prompt_tokens: usize,
    airlock: &[Measurement],
    llamacpp: &[Measurement],
) -> String {
    let mut s = String::new();
    let what = match constraint {
        "json" => "any JSON object".to_string(),
        schema => format!("the JSON Schema {schema}"),
    };
    let _ = writeln!(
        s,
        "greedy decoding constrained to {what} ({prompt_tokens}-token chat prompt, until the JSON \
         value is complete), medians of {} runs each\n",
        airlock.len()
    );
    let _ = writeln!(s, "| | airlock | llama.cpp | airlock / llama.cpp |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let tokens = |runs: &[Measurement]| median(runs.iter().map(|m| m.gen_tokens as f64).collect());
    let (a, p) = (tokens(airlock), tokens(llamacpp));
    let _ = writeln!(s, "| tokens generated | {a:.0} | {p:.0} | |");
    let speed = |runs: &[Measurement]| median(runs.iter().map(Measurement::gen_tps).collect());
    let (a, p) = (speed(airlock), speed(llamacpp));
    let _ = writeln!(
        s,
        "| constrained generation tokens/s (higher is better) | {a:.1} | {p:.1} | {:.2}x |",
        a / p
    );
    if let (Some(a), Some(p)) = (airlock.first(), llamacpp.first()) {
        let same = a.tokens.iter().zip(&p.tokens).take_while(|(x, y)| x == y).count();
        let _ = writeln!(
            s,
            "\nconstrained greedy tokens identical for the first {same} of {} positions",
            a.tokens.len().min(p.tokens.len())
        );
    }
    s
}
