//! A bounded load test of a running `airlock serve` on loopback: for each client count, a fixed
//! number of `/api/generate` requests (greedy, `stream: false`) shared by that many concurrent
//! clients, within a time limit. Prints, per workload and client count, failed requests, the
//! aggregate generated tokens/s, its ratio to one client, and the mean per-request decode rate.
//!
//! ```text
//! airlock serve --port 18080 &
//! cargo run --release -p airlock-server --example load_test -- \
//!     --url 127.0.0.1:18080 --clients 1,4,8 --requests 32 --max-tokens 64 \
//!     --workloads plain,schema,mixed --adapter-path ../shared/reference/peft-trained-smollm2
//! ```
//!
//! Workloads: `plain` (free text), `schema` (the same prompt under a JSON Schema), `mixed`
//! (rotating through base, adapter by name, schema, and base + adapter at scale 0.5 per request;
//! needs `--adapter-path`), `openai` (a chat answer through `/v1/chat/completions`, the protocol
//! llama.cpp's own server speaks: `python -m llama_cpp.server`, the peer). A schema response
//! that says `stop` but does not parse counts as failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADAPTER_NAME: &str = "loadtest-adapter";
const PROMPT: &str = "Describe a robot as JSON with its name, purpose and parts.";

struct Args {
    url: String,
    clients: Vec<usize>,
    requests: usize,
    max_tokens: usize,
    time_limit: Duration,
    workloads: Vec<String>,
    adapter_path: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "127.0.0.1:11434".into(),
        clients: vec![1, 4, 8],
        requests: 32,
        max_tokens: 64,
        time_limit: Duration::from_secs(600),
        workloads: vec!["plain".into(), "schema".into()],
        adapter_path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?.trim_start_matches("http://").trim_end_matches('/').to_string(),
            "--clients" => {
                args.clients = value()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("--clients: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--requests" => args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--max-tokens" => args.max_tokens = value()?.parse().map_err(|e| format!("--max-tokens: {e}"))?,
            "--time-limit" => {
                args.time_limit = Duration::from_secs(value()?.parse().map_err(|e| format!("--time-limit: {e}"))?);
            }
            "--workloads" => args.workloads = value()?.split(',').map(str::to_string).collect(),
            "--adapter-path" => args.adapter_path = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let host = args.url.split(':').next().unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err("the load test only targets loopback".into());
    }
    Ok(args)
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and body.
async fn http(addr: &str, method: &str, path: &str, body: &Value) -> std::io::Result<(u16, Vec<u8>)> {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = std::str::from_utf8(&raw[..split])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "purpose": {"type": "string", "maxLength": 80},
            "parts": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 4}
        },
        "required": ["name", "purpose", "parts"],
        "additionalProperties": false
    })
}

/// The path and body of request `i` of a workload, and whether its answer must parse as JSON.
fn request(workload: &str, i: usize, max_tokens: usize) -> (&'static str, Value, bool) {
    if workload == "openai" {
        // OpenAI's chat protocol, which llama.cpp's own server speaks too.
        let messages = json!([{"role": "user", "content": PROMPT}]);
        let body = json!({"model": "smollm2", "messages": messages, "max_tokens": max_tokens, "temperature": 0.0});
        return ("/v1/chat/completions", body, false);
    }
    let mut body =
        json!({"model": "smollm2", "prompt": PROMPT, "stream": false, "options": {"num_predict": max_tokens}});
    let kind = match workload {
        "mixed" => i % 4,
        "schema" => 2,
        _ => 0,
    };
    match kind {
        1 => body["model"] = json!(ADAPTER_NAME),
        2 => body["format"] = schema(),
        3 => body["adapters"] = json!([{"name": ADAPTER_NAME, "scale": 0.5}]),
        _ => {}
    }
    ("/api/generate", body, kind == 2)
}

#[derive(Default)]
struct Outcome {
    ok: usize,
    failed: usize,
    tokens: u64,
    decode_rates: Vec<f64>,
}

async fn run(args: &Args, workload: &str, clients: usize) -> (Outcome, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + args.time_limit;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, url, workload, requests, max_tokens) = (
            Arc::clone(&next),
            args.url.clone(),
            workload.to_string(),
            args.requests,
            args.max_tokens,
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || Instant::now() > deadline {
                    return out;
                }
                let (path, body, constrained) = request(&workload, i, max_tokens);
                let reply = tokio::time::timeout_at(deadline.into(), http(&url, "POST", path, &body)).await;
                let parsed = match reply {
                    Ok(Ok((200, bytes))) => serde_json::from_slice::<Value>(&bytes).ok(),
                    _ => None,
                };
                let Some(v) = parsed else {
                    out.failed += 1;
                    continue;
                };
                let valid = !constrained
                    || v["done_reason"] != "stop"
                    || v["response"]
                        .as_str()
                        .is_some_and(|r| serde_json::from_str::<Value>(r).is_ok());
                if !valid {
                    out.failed += 1;
                    continue;
                }
                let n = v["eval_count"]
                    .as_u64()
                    .or(v["usage"]["completion_tokens"].as_u64())
                    .unwrap_or(0);
                let ns = v["eval_duration"].as_u64().unwrap_or(0);
                out.ok += 1;
                out.tokens += n;
                if n > 1 && ns > 0 {
                    out.decode_rates.push(n as f64 / (ns as f64 / 1e9));
                }
            }
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let out = task.await.unwrap_or_default();
        total.ok += out.ok;
        total.failed += out.failed;
        total.tokens += out.tokens;
        total.decode_rates.extend(out.decode_rates);
    }
    total.failed += args.requests.saturating_sub(total.ok + total.failed); // not started in time
    (total, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    if let Some(path) = &args.adapter_path {
        let path = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
        let (status, body) = http(
            &args.url,
            "POST",
            "/api/adapters",
            &json!({"name": ADAPTER_NAME, "path": path}),
        )
        .await
        .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "loading the adapter: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
    } else if args.workloads.iter().any(|w| w == "mixed") {
        return Err("the mixed workload needs --adapter-path".into());
    }
    println!(
        "{} requests per run, {} tokens max each, greedy; server {}",
        args.requests, args.max_tokens, args.url
    );
    println!(
        "| workload | clients | ok | failed | wall s | tokens | aggregate tok/s | vs 1 client | mean decode tok/s per request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut any_failed = false;
    for workload in &args.workloads {
        let mut baseline = None;
        for &clients in &args.clients {
            let (out, wall) = run(&args, workload, clients).await;
            let rate = out.tokens as f64 / wall.as_secs_f64();
            let base = *baseline.get_or_insert(rate);
            let decode = match out.decode_rates.len() {
                0 => "-".to_string(), // the OpenAI protocol reports no decode time
                n => format!("{:.1}", out.decode_rates.iter().sum::<f64>() / n as f64),
            };
            any_failed |= out.failed > 0;
            println!(
                "| {workload} | {clients} | {} | {} | {:.1} | {} | {rate:.1} | {:.2}x | {decode} |",
                out.ok,
                out.failed,
                wall.as_secs_f64(),
                out.tokens,
                rate / base
            );
        }
    }
    if args.adapter_path.is_some() {
        let _ = http(
            &args.url,
            "DELETE",
            &format!("/api/adapters/{ADAPTER_NAME}"),
            &json!({}),
        )
        .await;
    }
    if any_failed {
        return Err("some requests failed".into());
    }
    Ok(())
}
