//! Counters and latency histograms for `/metrics`, rendered in Prometheus' text format (0.0.4),
//! together with the engine's own gauges and token counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use airlock_engine::Metrics as EngineMetrics;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
pub struct ServerMetrics {
    /// (route, status) -> count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// route -> request latency (until the response head; streams are timed separately).
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Time from submission to the end of a generation, streamed or not.
    generation: Mutex<Histogram>,
    pub adapter_loads: AtomicU64,
    pub adapter_load_failures: AtomicU64,
    pub adapter_unloads: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ServerMetrics {
    pub fn record_request(&self, route: &str, status: u16, elapsed: Duration) {
        *lock(&self.requests).entry((route.to_string(), status)).or_default() += 1;
        lock(&self.latency)
            .entry(route.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_generation(&self, elapsed: Duration) {
        lock(&self.generation).observe(elapsed.as_secs_f64());
    }

    /// The text exposition of everything, with the engine's counters and `adapters_loaded`.
    pub fn render(&self, engine: &EngineMetrics, adapters_loaded: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE airlock_requests_total counter\n");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "airlock_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP airlock_request_duration_seconds Time to the response head, by route.\n");
        out.push_str("# TYPE airlock_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            histogram(
                &mut out,
                "airlock_request_duration_seconds",
                &format!("route=\"{}\",", escape(route)),
                h,
            );
        }
        out.push_str("# HELP airlock_generation_duration_seconds Time from submission to the last token.\n");
        out.push_str("# TYPE airlock_generation_duration_seconds histogram\n");
        histogram(
            &mut out,
            "airlock_generation_duration_seconds",
            "",
            &lock(&self.generation),
        );
        let counters = [
            (
                "airlock_prompt_tokens_total",
                "Prompt tokens processed.",
                engine.prompt_tokens.load(Ordering::Relaxed),
            ),
            (
                "airlock_generated_tokens_total",
                "Tokens generated.",
                engine.generated_tokens.load(Ordering::Relaxed),
            ),
            (
                "airlock_generations_finished_total",
                "Generations that ended.",
                engine.requests_finished.load(Ordering::Relaxed),
            ),
            (
                "airlock_adapter_loads_total",
                "Adapters loaded.",
                self.adapter_loads.load(Ordering::Relaxed),
            ),
            (
                "airlock_adapter_load_failures_total",
                "Adapters refused.",
                self.adapter_load_failures.load(Ordering::Relaxed),
            ),
            (
                "airlock_adapter_unloads_total",
                "Adapters unloaded.",
                self.adapter_unloads.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let gauges = [
            (
                "airlock_queue_depth",
                "Requests waiting for a batch slot.",
                engine.queued.load(Ordering::Relaxed),
            ),
            (
                "airlock_active_rows",
                "Requests being decoded.",
                engine.active.load(Ordering::Relaxed),
            ),
            ("airlock_adapters_loaded", "Adapters loaded now.", adapters_loaded),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (bound, count) in BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
    let labels = labels.trim_end_matches(',');
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum);
    let _ = writeln!(out, "{name}_count{labels} {}", h.count);
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_counts_add_up() {
        let m = ServerMetrics::default();
        m.record_request("/api/generate", 200, Duration::from_millis(30));
        m.record_request("/api/generate", 200, Duration::from_secs(3));
        m.record_request("/api/generate", 404, Duration::from_millis(1));
        let text = m.render(&EngineMetrics::default(), 0);
        assert!(text.contains("airlock_requests_total{route=\"/api/generate\",status=\"200\"} 2"));
        assert!(text.contains("airlock_request_duration_seconds_bucket{route=\"/api/generate\",le=\"0.05\"} 2"));
        assert!(text.contains("airlock_request_duration_seconds_count{route=\"/api/generate\"} 3"));
    }
}
