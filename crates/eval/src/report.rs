//! Reports of an evaluation: a terminal table (every variant side by side with its difference
//! from the base), JSON, JUnit XML (one test case per example and variant; failures carry
//! expected and got) and Markdown (the table, then the worst examples).

use std::fmt::Write;

use serde::Serialize;

use crate::run::VariantReport;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data: String,
    pub variants: Vec<VariantReport>,
}

impl Report {
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.variants.iter().flat_map(|v| v.scores.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn base(&self) -> Option<&VariantReport> {
        self.variants.iter().find(|v| v.name == "base")
    }

    fn cell(v: &VariantReport, key: &str, base: Option<&VariantReport>) -> String {
        let Some(s) = v.scores.get(key) else { return "-".into() };
        let mut cell = format!("{:.3}", s.value);
        if let (Some(lo), Some(hi)) = (s.low, s.high) {
            let _ = write!(cell, " [{lo:.2}, {hi:.2}]");
        }
        if let Some(b) = base.filter(|b| b.name != v.name).and_then(|b| b.scores.get(key)) {
            let _ = write!(cell, " ({:+.3})", s.value - b.value);
        }
        cell
    }

    /// Plain text: metric rows, variant columns.
    pub fn table(&self) -> String {
        let base = self.base();
        let mut out = format!("{:<28}", "metric");
        for v in &self.variants {
            let _ = write!(out, " {:>34}", v.name);
        }
        out.push('\n');
        for key in self.keys() {
            let _ = write!(out, "{key:<28}");
            for v in &self.variants {
                let _ = write!(out, " {:>34}", Self::cell(v, &key, base));
            }
            out.push('\n');
        }
        for v in &self.variants {
            let _ = writeln!(out, "{}: {} examples in {:.0} s", v.name, v.examples.len(), v.seconds);
        }
        out
    }

    pub fn markdown(&self, worst: usize) -> String {
        let base = self.base();
        let mut out = format!("# Evaluation of `{}`\n\n| metric |", self.data);
        for v in &self.variants {
            let _ = write!(out, " {} |", v.name);
        }
        out.push_str("\n| --- |");
        out.push_str(&" --- |".repeat(self.variants.len()));
        out.push('\n');
        for key in self.keys() {
            let _ = write!(out, "| {key} |");
            for v in &self.variants {
                let _ = write!(out, " {} |", Self::cell(v, &key, base));
            }
            out.push('\n');
        }
        out.push_str("\nRates with their 95% Wilson interval; (±) is the difference from the base model.\n");
        for v in &self.variants {
            for (field, tally) in &v.items {
                let mut wrong: Vec<_> = tally.iter().filter(|(_, c)| c.missed() + c.added > 0).collect();
                if wrong.is_empty() {
                    continue;
                }
                wrong.sort_by_key(|(item, c)| (std::cmp::Reverse(c.missed() + c.added), item.to_string()));
                let _ = writeln!(
                    out,
                    "\n## {}: `{field}` items missed or added (first {})\n\n| item | expected | found | missed | added |\n| --- | ---: | ---: | ---: | ---: |",
                    v.name,
                    wrong.len().min(worst)
                );
                for (item, c) in wrong.into_iter().take(worst) {
                    let _ = writeln!(
                        out,
                        "| {item} | {} | {} | {} | {} |",
                        c.expected,
                        c.found,
                        c.missed(),
                        c.added
                    );
                }
            }
        }
        for v in &self.variants {
            let failed: Vec<_> = v.examples.iter().filter(|e| !e.passed).take(worst).collect();
            if failed.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {}: failed examples (first {})\n", v.name, failed.len());
            for e in failed {
                let _ = writeln!(
                    out,
                    "- #{} expected `{}`\n  got `{}`",
                    e.index,
                    e.expected.replace('`', "'"),
                    e.output.replace('`', "'")
                );
            }
        }
        out
    }

    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        for v in &self.variants {
            let failures = v.examples.iter().filter(|e| !e.passed).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
                esc(&v.name),
                v.examples.len(),
                v.seconds
            );
            for e in &v.examples {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"example-{}\"",
                    esc(&self.data),
                    e.index
                );
                if e.passed {
                    out.push_str("/>\n");
                } else {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"output does not match\">expected: {}\ngot: {}</failure>\n    </testcase>",
                        esc(&e.expected),
                        esc(&e.output)
                    );
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// A threshold a CI job gates on.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Every adapter's `metric` is at least `min`.
    Min { metric: String, min: f64 },
    /// Every adapter's `metric` is above the base model's.
    BeatsBase { metric: String },
}

impl Gate {
    /// `metric=value`.
    pub fn parse_min(text: &str) -> Option<Self> {
        let (metric, value) = text.split_once('=')?;
        Some(Gate::Min {
            metric: metric.trim().to_string(),
            min: value.trim().parse().ok()?,
        })
    }

    /// Failures of this gate, as sentences; empty when it holds.
    pub fn check(&self, report: &Report) -> Vec<String> {
        let base = report.base();
        let adapters = report.variants.iter().filter(|v| v.name != "base");
        let mut failures = Vec::new();
        for v in adapters {
            match self {
                Gate::Min { metric, min } => match v.scores.get(metric) {
                    Some(s) if s.value >= *min => {}
                    Some(s) => failures.push(format!("{}: {metric} = {:.3} is below {min}", v.name, s.value)),
                    None => failures.push(format!("{}: no metric `{metric}` was measured", v.name)),
                },
                Gate::BeatsBase { metric } => {
                    let ours = v.scores.get(metric).map(|s| s.value);
                    let theirs = base.and_then(|b| b.scores.get(metric)).map(|s| s.value);
                    match (ours, theirs) {
                        (Some(a), Some(b)) if a > b => {}
                        (Some(a), Some(b)) => {
                            failures.push(format!("{}: {metric} = {a:.3} does not beat the base's {b:.3}", v.name))
                        }
                        _ => failures.push(format!("{}: `{metric}` needs --baseline and a measured value", v.name)),
                    }
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::metrics::ItemCounts;

    #[test]
    fn markdown_lists_the_items_missed_or_added_worst_first() {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut tally = BTreeMap::new();
        ItemCounts::tally(&mut tally, &set(&["i21.4", "f17.210"]), &set(&["i21.4"]));
        ItemCounts::tally(&mut tally, &set(&["i10"]), &set(&["i10", "z91.14", "e78.5"]));
        ItemCounts::tally(&mut tally, &set(&["i10"]), &set(&["i10", "z91.14"]));
        let report = Report {
            data: "notes.jsonl".into(),
            variants: vec![VariantReport {
                name: "billing".into(),
                items: BTreeMap::from([("billing_codes".to_string(), tally)]),
                ..Default::default()
            }],
        };
        let md = report.markdown(2);
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.matches('|').count() == 6 && !l.contains("---") && !l.starts_with("| item"))
            .collect();
        assert_eq!(
            rows,
            ["| z91.14 | 0 | 0 | 0 | 2 |", "| e78.5 | 0 | 0 | 0 | 1 |"],
            "{md}"
        );
        assert!(md.contains("`billing_codes` items missed or added (first 2)"), "{md}");
    }
}
