//! Constraints on the default model's real tokenizer (SmolLM2, 49152 tokens): random walks through
//! the mask yield valid JSON / schema-valid JSON / regex matches; disallowed tokens are rejected;
//! unsupported schema features are errors naming the feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use airlock_constrain::{ConstrainError, Constraint, Matcher};
use common::{compiler, random_walk, text, tokenizer};
use serde_json::{Value, json};

const SEEDS: std::ops::Range<u64> = 0..8;
const MAX_STEPS: usize = 3000;

/// The Pydantic-style schema of the medical-billing example.
fn billing_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string"},
            "urgency": {"enum": ["routine", "urgent", "emergency"]},
            "procedures": {"type": "array", "items": {"type": "string"}},
            "billing_codes": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["diagnosis", "urgency", "procedures", "billing_codes"]
    })
}

/// A hand check of [`billing_schema`] (extra properties are allowed by the schema).
fn assert_valid_billing(value: &Value) {
    let object = value.as_object().expect("an object");
    assert!(object["diagnosis"].is_string(), "{value}");
    let urgency = object["urgency"].as_str().expect("urgency is a string");
    assert!(["routine", "urgent", "emergency"].contains(&urgency), "{value}");
    for key in ["procedures", "billing_codes"] {
        let items = object[key].as_array().expect("an array");
        assert!(items.iter().all(Value::is_string), "{value}");
    }
}

fn compile(constraint: &Constraint) -> Matcher {
    compiler().compile(constraint).expect("constraint compiles")
}

fn consume_text(matcher: &mut Matcher, text: &str) {
    for id in tokenizer().encode(text).expect("encode") {
        matcher
            .consume(id)
            .unwrap_or_else(|e| panic!("{text:?}: token {id}: {e}"));
    }
}

#[test]
fn json_object_random_walks_end_in_a_parseable_json_object() {
    for seed in SEEDS {
        let mut matcher = compile(&Constraint::JsonObject);
        let walk = random_walk(&mut matcher, seed, MAX_STEPS);
        let output = text(&walk.tokens);
        assert!(walk.ended, "seed {seed}: no end after {MAX_STEPS} steps: {output}");
        let value: Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("seed {seed}: {e}: {output}"));
        assert!(value.is_object(), "seed {seed}: {output}");
    }
}

#[test]
fn schema_random_walks_end_in_json_valid_against_the_schema() {
    for seed in SEEDS {
        let mut matcher = compile(&Constraint::JsonSchema(billing_schema()));
        let walk = random_walk(&mut matcher, seed, MAX_STEPS);
        let output = text(&walk.tokens);
        assert!(walk.ended, "seed {seed}: no end after {MAX_STEPS} steps: {output}");
        let value: Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("seed {seed}: {e}: {output}"));
        assert_valid_billing(&value);
    }
}

#[test]
fn real_tokenization_of_a_valid_document_is_accepted_in_both_separator_styles() {
    for doc in [
        r#"{"diagnosis": "Type 2 diabetes", "urgency": "routine", "procedures": ["HbA1c test"], "billing_codes": ["E11.9", "83036"]}"#,
        r#"{"diagnosis":"flu","urgency":"urgent","procedures":[],"billing_codes":["J10.1"]}"#,
    ] {
        let mut matcher = compile(&Constraint::JsonSchema(billing_schema()));
        consume_text(&mut matcher, doc);
        assert!(matcher.is_accepting(), "{doc}");
        assert!(matcher.is_finished(), "nothing can follow the closing brace: {doc}");
        let allowed = matcher.allowed().expect("mask");
        for &eog in tokenizer().eog_ids() {
            assert!(
                allowed.contains(eog),
                "end-of-generation token {eog} allowed after {doc}"
            );
        }
    }
}

#[test]
fn a_disallowed_token_is_rejected_and_leaves_the_state_unchanged() {
    let tok = tokenizer();
    let mut matcher = compile(&Constraint::JsonSchema(billing_schema()));
    let letter = tok.encode("a").expect("encode")[0];
    assert_eq!(matcher.consume(letter), Err(ConstrainError::Rejected { token: letter }));
    let eos = tok.eos_id().expect("eos");
    assert_eq!(
        matcher.consume(eos),
        Err(ConstrainError::Rejected { token: eos }),
        "EOS before any output"
    );
    assert_eq!(
        matcher.consume(u32::MAX),
        Err(ConstrainError::Rejected { token: u32::MAX })
    );
    // Still at the start: the document goes through, and a key the schema lacks is refused mid-way.
    consume_text(&mut matcher, r#"{"diagnosis": "flu", "urgency": ""#);
    let wrong = tok.encode("sometimes").expect("encode")[0];
    assert!(matches!(matcher.consume(wrong), Err(ConstrainError::Rejected { .. })));
    consume_text(&mut matcher, r#"urgent""#);
    assert!(!matcher.is_accepting(), "required keys are still missing");
}

#[test]
fn special_token_text_cannot_appear_inside_a_string() {
    let tok = tokenizer();
    let mut matcher = compile(&Constraint::JsonObject);
    consume_text(&mut matcher, r#"{"note": ""#);
    let allowed = matcher.allowed().expect("mask");
    let specials: Vec<u32> = (0..tok.vocab_size() as u32).filter(|&id| tok.is_special(id)).collect();
    assert!(!specials.is_empty());
    assert!(
        specials.iter().all(|&id| !allowed.contains(id)),
        "no control token inside a JSON string"
    );
    assert!(
        allowed.count() > 10_000,
        "most of the vocabulary can be string content: {}",
        allowed.count()
    );
}

#[test]
fn whitespace_between_json_tokens_is_bounded_to_one_space_after_separators() {
    let tok = tokenizer();
    let mut matcher = compile(&Constraint::JsonObject);
    let is_blank = |id: u32| {
        let bytes = tok.token_bytes(id);
        !bytes.is_empty() && bytes.iter().all(u8::is_ascii_whitespace)
    };
    // Before the opening brace nothing blank is allowed.
    assert!(!matcher.allowed().expect("mask").iter().any(is_blank));
    consume_text(&mut matcher, r#"{"a":"#);
    // After ':' one space may come, then the value: no second blank.
    let space = tok.encode(" ").expect("encode");
    assert_eq!(space.len(), 1);
    matcher.consume(space[0]).expect("one space after the colon");
    assert!(
        !matcher.allowed().expect("mask").iter().any(is_blank),
        "a second blank after ': '"
    );
}

#[test]
fn mask_logits_sets_disallowed_and_padding_entries_to_negative_infinity() {
    let mut matcher = compile(&Constraint::JsonSchema(billing_schema()));
    consume_text(&mut matcher, r#"{"diagnosis": "flu", "urgency": "#);
    let vocab = matcher.vocab_size();
    let mut logits = vec![0.5_f32; vocab + 64];
    matcher.mask_logits(&mut logits).expect("mask");
    let allowed = matcher.allowed().expect("mask").clone();
    for (id, &logit) in logits.iter().enumerate() {
        assert_eq!(logit.is_finite(), allowed.contains(id as u32), "token {id}");
    }
    assert!(logits[vocab..].iter().all(|l| *l == f32::NEG_INFINITY));
    assert!(
        allowed.count() >= 1 && allowed.count() < 100,
        "only the enum's openings: {}",
        allowed.count()
    );
}

#[test]
fn unsupported_schema_features_are_errors_naming_them() {
    let cases = [
        (
            json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}),
            "uniqueItems",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string", "format": "credit-card"}}}),
            "credit-card",
        ),
        (json!({"type": "object", "x-guidance": {"lenient": true}}), "x-guidance"),
    ];
    for (schema, feature) in cases {
        match compiler().compile(&Constraint::JsonSchema(schema.clone())) {
            Err(ConstrainError::Unsupported { feature: named }) => {
                assert!(named.contains(feature), "{named:?} names {feature}")
            }
            other => panic!("{schema}: expected Unsupported naming {feature}, got {other:?}"),
        }
    }
}

#[test]
fn invalid_schemas_are_invalid_schema_errors() {
    for schema in [json!({"type": "strnig"}), json!(false), json!(42)] {
        let result = compiler().compile(&Constraint::JsonSchema(schema.clone()));
        assert!(
            matches!(result, Err(ConstrainError::InvalidSchema { .. })),
            "{schema}: {result:?}"
        );
    }
}

#[test]
fn regex_random_walks_match_the_regex_and_finish() {
    let regex = r"(yes|no), [0-9]{3}-[0-9]{4}";
    for seed in SEEDS {
        let mut matcher = compile(&Constraint::Regex(regex.into()));
        let walk = random_walk(&mut matcher, seed, 100);
        let output = text(&walk.tokens);
        assert!(walk.ended, "seed {seed}: {output}");
        let (answer, number) = output.split_once(", ").unwrap_or_else(|| panic!("{output}"));
        assert!(answer == "yes" || answer == "no", "{output}");
        let digits: Vec<&str> = number.split('-').collect();
        assert_eq!(digits.iter().map(|d| d.len()).collect::<Vec<_>>(), [3, 4], "{output}");
        assert!(digits.iter().all(|d| d.bytes().all(|b| b.is_ascii_digit())), "{output}");
    }
}

#[test]
fn a_complete_regex_match_is_finished_and_allows_only_end_of_generation() {
    let mut matcher = compile(&Constraint::Regex("[0-9]{3}".into()));
    assert!(!matcher.is_accepting());
    consume_text(&mut matcher, "123");
    assert!(matcher.is_accepting());
    assert!(matcher.is_finished());
    let allowed: Vec<u32> = matcher.allowed().expect("mask").iter().collect();
    let mut eog = tokenizer().eog_ids().to_vec();
    eog.sort_unstable();
    assert_eq!(allowed, eog);
}

#[test]
fn an_invalid_regex_is_an_invalid_regex_error() {
    let result = compiler().compile(&Constraint::Regex("([0-9]".into()));
    assert!(matches!(result, Err(ConstrainError::InvalidRegex { .. })), "{result:?}");
}

#[test]
fn matchers_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<Matcher>();
    assert_send_sync::<airlock_constrain::ConstraintCompiler>();
}
