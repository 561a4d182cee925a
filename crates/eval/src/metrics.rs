//! Scoring one output against its reference, and confidence intervals for rates.
//!
//! - `exact`: equal after trimming and collapsing whitespace.
//! - `contains`: the answer phrase appears in the output, ignoring case and spacing.
//! - `json-fields`: both sides parsed as JSON objects; string fields compared ignoring case and
//!   spacing, list fields as sets (exact-set match, and precision/recall/F1 over items), plus
//!   JSON validity and (with a schema) schema validity rates. List items are also tallied one by
//!   one (`ItemCounts`), so a report can say which values an adapter misses or adds.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// Lower case with single spaces.
pub fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

pub fn exact(output: &str, reference: &str) -> bool {
    output.split_whitespace().eq(reference.split_whitespace())
}

pub fn contains(output: &str, answer: &str) -> bool {
    normalize(output).contains(&normalize(answer))
}

/// Per-field outcome of one JSON comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldScores {
    pub valid_json: bool,
    /// Scalar fields: matched or not. List fields: exact-set match.
    pub fields: BTreeMap<String, bool>,
    /// List fields: the expected and the produced items, normalized.
    pub lists: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

/// How often one list item was expected, found among the expected, and added where not expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ItemCounts {
    pub expected: usize,
    pub found: usize,
    pub added: usize,
}

impl ItemCounts {
    pub fn missed(&self) -> usize {
        self.expected - self.found
    }

    /// Adds one example's expected and produced items to `tally`.
    pub fn tally(tally: &mut BTreeMap<String, ItemCounts>, expected: &BTreeSet<String>, got: &BTreeSet<String>) {
        for item in expected {
            let c = tally.entry(item.clone()).or_default();
            c.expected += 1;
            c.found += usize::from(got.contains(item));
        }
        for item in got.difference(expected) {
            tally.entry(item.clone()).or_default().added += 1;
        }
    }
}

fn as_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|items| items.iter().map(scalar).collect())
        .unwrap_or_default()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => normalize(s),
        other => normalize(&other.to_string()),
    }
}

pub fn json_fields(output: &str, reference: &str) -> FieldScores {
    let expected: Value = serde_json::from_str(reference).unwrap_or(Value::Null);
    let got = serde_json::from_str::<Value>(output).ok().filter(Value::is_object);
    let mut scores = FieldScores {
        valid_json: got.is_some(),
        ..FieldScores::default()
    };
    let Some(expected) = expected.as_object() else {
        return scores;
    };
    for (key, want) in expected {
        let have = got.as_ref().and_then(|g| g.get(key)).unwrap_or(&Value::Null);
        if want.is_array() {
            let (w, h) = (as_set(want), as_set(have));
            scores.fields.insert(key.clone(), w == h);
            scores.lists.insert(key.clone(), (w, h));
        } else {
            scores
                .fields
                .insert(key.clone(), !have.is_null() && scalar(have) == scalar(want));
        }
    }
    scores
}

/// Wilson score interval (95%) for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_fields_compare_as_sets_and_strings_ignore_case_and_spacing() {
        let s = json_fields(
            r#"{"diagnosis": "heart  failure", "codes": ["B", "A"], "urgency": "urgent"}"#,
            r#"{"diagnosis": "Heart failure", "codes": ["A", "B", "C"], "urgency": "urgent"}"#,
        );
        assert!(s.valid_json);
        assert!(s.fields["diagnosis"]);
        assert!(!s.fields["codes"]);
        let (want, got) = &s.lists["codes"];
        assert_eq!((want.len(), got.len(), want.intersection(got).count()), (3, 2, 2));
    }

    #[test]
    fn items_are_tallied_as_found_missed_and_added() {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut tally = BTreeMap::new();
        ItemCounts::tally(&mut tally, &set(&["a", "b"]), &set(&["a", "c"]));
        ItemCounts::tally(&mut tally, &set(&["b"]), &set(&["b", "c"]));
        let counts = |item: &str| {
            let c: ItemCounts = tally[item];
            (c.expected, c.found, c.missed(), c.added)
        };
        assert_eq!(counts("a"), (1, 1, 0, 0));
        assert_eq!(counts("b"), (2, 1, 1, 0));
        assert_eq!(counts("c"), (0, 0, 0, 2));
    }

    #[test]
    fn invalid_json_scores_nothing() {
        let s = json_fields("not json", r#"{"a": 1}"#);
        assert!(!s.valid_json);
        assert!(!s.fields["a"]);
    }

    #[test]
    fn wilson_interval_brackets_the_rate_and_narrows_with_n() {
        let (lo, hi) = wilson(80, 100);
        assert!(lo < 0.8 && 0.8 < hi);
        let (lo2, hi2) = wilson(800, 1000);
        assert!(hi2 - lo2 < hi - lo);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn contains_ignores_case_and_spacing() {
        assert!(contains(
            "CAPA stands for  corrective and preventive action.",
            "Corrective and Preventive Action"
        ));
        assert!(!contains("CAPA is a thing", "Corrective and Preventive Action"));
    }
}
