//! Scoring one output against its reference, and confidence intervals for rates.
//!
//! - `exact`: equal after trimming and collapsing whitespace.
//! - `contains`: the answer phrase appears in the output, ignoring case and spacing.
//! - `json-fields`: both sides parsed as JSON objects; string fields compared ignoring case and
//!   spacing, list fields as sets (exact-set match, and precision/recall/F1 over items), plus
//!   JSON validity and (with a schema) schema validity rates.

use std::collections::{BTreeMap, BTreeSet};

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
    /// List fields: (true positives, predicted, expected) for precision/recall/F1.
    pub sets: BTreeMap<String, (usize, usize, usize)>,
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
            scores
                .sets
                .insert(key.clone(), (w.intersection(&h).count(), h.len(), w.len()));
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
        assert_eq!(s.sets["codes"], (2, 2, 3));
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
