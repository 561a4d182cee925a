//! Tokenizers built from tiny vocabularies made here, with splits worked out by hand from the
//! algorithms llama.cpp implements (SentencePiece: join the best-scoring adjacent pair; byte-level
//! BPE: apply merges in rank order within each regex pre-token).

#![allow(clippy::unwrap_used)]

use airlock_gguf::{GgufFile, GgufWriter, Value};
use airlock_tokenizer::spec::token_type;
use airlock_tokenizer::{ChatMessage, StreamDecoder, Tokenizer, TokenizerError, TokenizerSpec, chat};

// ---------- SentencePiece ----------

/// `<unk> <s> </s>`, the 256 `<0xNN>` byte tokens, then scored pieces.
fn spm_spec() -> TokenizerSpec {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![token_type::UNKNOWN, token_type::CONTROL, token_type::CONTROL];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(token_type::BYTE);
        scores.push(0.0);
    }
    let pieces: &[(&str, f32)] = &[
        ("▁", -1.0),
        ("h", -1.0),
        ("e", -1.0),
        ("l", -1.0),
        ("o", -1.0),
        ("w", -1.0),
        ("r", -1.0),
        ("d", -1.0),
        ("ll", -2.0),
        ("he", -3.0),
        ("▁he", -4.0),
        ("llo", -5.0),
        ("▁hello", -6.0),
        ("or", -7.0),
        ("▁w", -8.0),
        ("ld", -9.0),
        ("▁wor", -10.0),
    ];
    for (p, s) in pieces {
        tokens.push((*p).into());
        types.push(token_type::NORMAL);
        scores.push(*s);
    }
    TokenizerSpec {
        model: "llama".into(),
        tokens,
        token_types: types,
        scores,
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        ..TokenizerSpec::default()
    }
}

fn id_of(spec: &TokenizerSpec, text: &str) -> u32 {
    spec.tokens.iter().position(|t| t == text).expect("token in tiny vocab") as u32
}

#[test]
fn sentencepiece_joins_the_best_scoring_pair_first() {
    let spec = spm_spec();
    let tok = Tokenizer::from_spec(&spec).unwrap();
    // "▁hello": ll(-2), he(-3), ▁he(-4), llo(-5), ▁hello(-6).
    // "▁world": or(-7), ▁w(-8), ld(-9) before ▁wor(-10); there is no "▁world".
    let expected: Vec<u32> = ["▁hello", "▁wor", "ld"].iter().map(|t| id_of(&spec, t)).collect();
    assert_eq!(tok.encode("hello world").unwrap(), expected);
    assert_eq!(tok.decode(&expected).unwrap(), "hello world");
}

#[test]
fn sentencepiece_falls_back_to_bytes_for_missing_characters() {
    let spec = spm_spec();
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let ids = tok.encode("hé").unwrap();
    let expected: Vec<u32> = ["▁", "h", "<0xC3>", "<0xA9>"].iter().map(|t| id_of(&spec, t)).collect();
    assert_eq!(ids, expected);
    assert_eq!(tok.decode(&ids).unwrap(), "hé");
    assert_eq!(tok.token_bytes(id_of(&spec, "<0x0A>")), b"\n");
    assert_eq!(tok.token_bytes(id_of(&spec, "▁he")), b" he");

    let mut stream = StreamDecoder::new(&tok);
    let chunks: Vec<String> = ids.iter().map(|&id| stream.push(&tok, id).unwrap()).collect();
    assert_eq!(chunks, ["", "h", "", "é"]);
    assert_eq!(stream.finish(), "");
}

#[test]
fn sentencepiece_specials_are_parsed_only_in_raw_mode_and_bos_is_added_by_default() {
    let spec = spm_spec();
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let hello = id_of(&spec, "▁hello");
    // After a special token the text gets its own space prefix, as in llama.cpp.
    assert_eq!(tok.encode_with_special("<s>hello").unwrap(), vec![1, hello]);
    let plain = tok.encode("<s>").unwrap();
    assert!(!plain.contains(&1), "{plain:?}");
    assert!(tok.add_bos());
    assert_eq!(tok.prompt_tokens("hello").unwrap(), vec![1, hello]);
    assert_eq!(tok.prompt_tokens("<s>hello").unwrap(), vec![1, hello], "no second BOS");
    assert_eq!(tok.eog_ids(), &[2]);
}

/// Mistral 7B v0.1's chat template: it emits BOS itself.
const MISTRAL_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

#[test]
fn bos_from_the_template_is_not_doubled() {
    let mut spec = spm_spec();
    spec.chat_template = Some(MISTRAL_TEMPLATE.into());
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let msgs = [ChatMessage::new("user", "hello")];
    assert_eq!(
        tok.render_chat_template(&msgs, true).unwrap(),
        "<s>[INST] hello [/INST]"
    );
    let ids = tok.apply_chat_template(&msgs, true).unwrap();
    let mut expected = vec![1];
    expected.extend(tok.encode("[INST] hello [/INST]").unwrap());
    assert_eq!(ids, expected);

    let err = tok
        .apply_chat_template(&[ChatMessage::new("assistant", "hi")], true)
        .unwrap_err();
    assert!(err.to_string().contains("roles must alternate"), "{err}");
}

#[test]
fn bos_is_added_when_the_template_does_not_emit_it() {
    let spec = spm_spec(); // no template: ChatML fallback, add_bos defaults to true for SPM
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let ids = tok
        .apply_chat_template(&[ChatMessage::new("user", "hello")], false)
        .unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 1);
}

// ---------- byte-level BPE ----------

/// GPT-2's byte -> char table (same construction as in the crate).
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

/// `<|end|>` (control), `<think>` (user-defined), the 256 byte chars, then merged tokens.
fn bpe_spec(pre: &str) -> TokenizerSpec {
    let mut tokens: Vec<String> = vec!["<|end|>".into(), "<think>".into()];
    let mut types = vec![token_type::CONTROL, token_type::USER_DEFINED];
    for b in 0..=255u8 {
        tokens.push(byte_char(b).to_string());
        types.push(token_type::NORMAL);
    }
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(token_type::NORMAL);
    }
    // In the vocabulary but reachable by no merge path: only llama3-style ignore_merges finds it.
    tokens.push("world".into());
    types.push(token_type::NORMAL);
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types: types,
        merges: merges.iter().map(|m| (*m).to_string()).collect(),
        bos_id: Some(0),
        eos_id: Some(0),
        ..TokenizerSpec::default()
    }
}

fn ids_of(spec: &TokenizerSpec, texts: &[&str]) -> Vec<u32> {
    texts.iter().map(|t| id_of(spec, t)).collect()
}

#[test]
fn byte_level_bpe_applies_merges_within_pre_tokens() {
    let spec = bpe_spec("gpt-2");
    let tok = Tokenizer::from_spec(&spec).unwrap();
    let ids = tok.encode("hello world").unwrap();
    assert_eq!(ids, ids_of(&spec, &["hello", "Ġw", "or", "l", "d"]));
    assert_eq!(tok.decode(&ids).unwrap(), "hello world");
    assert_eq!(tok.token_bytes(id_of(&spec, "Ġw")), b" w");
    assert!(!tok.add_bos(), "gpt-2 pre-tokenizer: no BOS unless the file says so");
}

#[test]
fn llama3_pre_tokenizer_takes_whole_words_found_in_the_vocabulary() {
    let spec = bpe_spec("llama-bpe");
    let tok = Tokenizer::from_spec(&spec).unwrap();
    assert_eq!(tok.encode("world").unwrap(), ids_of(&spec, &["world"]));
    let gpt2 = Tokenizer::from_spec(&bpe_spec("gpt-2")).unwrap();
    assert_eq!(gpt2.encode("world").unwrap(), ids_of(&spec, &["w", "or", "l", "d"]));
    assert!(tok.add_bos(), "llama3 pre-tokenizer implies add_bos");
}

#[test]
fn smollm_pre_tokenizer_splits_every_digit() {
    let spec = bpe_spec("smollm");
    let tok = Tokenizer::from_spec(&spec).unwrap();
    assert_eq!(tok.encode(" 42").unwrap(), ids_of(&spec, &["Ġ", "4", "2"]));
}

#[test]
fn control_tokens_need_raw_mode_but_user_defined_tokens_always_match() {
    let spec = bpe_spec("gpt-2");
    let tok = Tokenizer::from_spec(&spec).unwrap();
    assert_eq!(tok.encode("<think>he").unwrap(), vec![1, id_of(&spec, "he")]);
    let plain = tok.encode("<|end|>").unwrap();
    assert_eq!(plain.len(), 7, "one token per character: {plain:?}");
    assert_eq!(
        tok.encode_with_special("he<|end|>").unwrap(),
        vec![id_of(&spec, "he"), 0]
    );
    assert_eq!(tok.decode(&[id_of(&spec, "he"), 0]).unwrap(), "he<|end|>");
    assert_eq!(tok.decode_skip_special(&[id_of(&spec, "he"), 0]).unwrap(), "he");
    assert_eq!(tok.eog_ids(), &[0]);
}

#[test]
fn unknown_tokenizer_model_is_named_in_the_error() {
    let spec = TokenizerSpec {
        model: "t5".into(),
        tokens: vec!["a".into()],
        ..Default::default()
    };
    let err = Tokenizer::from_spec(&spec).err().expect("t5 is not supported");
    assert!(
        matches!(&err, TokenizerError::UnsupportedModel(m) if m == "t5"),
        "{err}"
    );
    assert!(err.to_string().contains("t5"));
}

#[test]
fn out_of_range_special_ids_and_short_arrays_are_rejected() {
    let mut spec = bpe_spec("gpt-2");
    spec.eos_id = Some(1_000_000);
    let err = Tokenizer::from_spec(&spec).err().expect("eos out of range");
    assert!(
        matches!(err, TokenizerError::IdOutOfRange { id: 1_000_000, .. }),
        "{err}"
    );
    let mut spec = bpe_spec("gpt-2");
    spec.token_types.pop();
    let err = Tokenizer::from_spec(&spec).err().expect("short token_type");
    assert!(matches!(err, TokenizerError::LengthMismatch { .. }), "{err}");
    assert!(
        Tokenizer::from_spec(&bpe_spec("gpt-2"))
            .unwrap()
            .decode(&[99_999])
            .is_err()
    );
}

// ---------- GGUF ----------

fn write_gguf(spec: &TokenizerSpec, template: Option<&str>) -> GgufFile {
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama")
        .add_metadata("tokenizer.ggml.model", spec.model.as_str())
        .add_metadata("tokenizer.ggml.tokens", strings(&spec.tokens))
        .add_metadata(
            "tokenizer.ggml.token_type",
            Value::Array(spec.token_types.iter().map(|&t| Value::I32(t)).collect()),
        )
        .add_metadata("tokenizer.ggml.merges", strings(&spec.merges))
        .add_metadata("tokenizer.ggml.bos_token_id", 0u32)
        .add_metadata("tokenizer.ggml.eos_token_id", 0u32)
        .add_metadata("tokenizer.ggml.add_bos_token", false);
    if let Some(pre) = &spec.pre {
        w.add_metadata("tokenizer.ggml.pre", pre.as_str());
    }
    if let Some(t) = template {
        w.add_metadata("tokenizer.chat_template", t);
    }
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

#[test]
fn gguf_metadata_builds_the_same_tokenizer_and_falls_back_to_chatml() {
    let spec = bpe_spec("gpt-2");
    let tok = Tokenizer::from_gguf(&write_gguf(&spec, None)).unwrap();
    assert_eq!(
        tok.encode("hello world").unwrap(),
        ids_of(&spec, &["hello", "Ġw", "or", "l", "d"])
    );
    assert_eq!(tok.chat_template(), None);
    assert_eq!(tok.effective_chat_template(), chat::CHATML_TEMPLATE);
    let rendered = tok
        .render_chat_template(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert_eq!(rendered, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn gguf_without_tokenizer_model_reports_the_missing_key() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    let file = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let err = Tokenizer::from_gguf(&file).err().expect("no tokenizer");
    assert!(
        matches!(
            err,
            TokenizerError::MissingKey {
                key: "tokenizer.ggml.model"
            }
        ),
        "{err}"
    );
}

#[test]
fn chat_template_specials_come_from_template_text_only() {
    let spec = bpe_spec("gpt-2");
    let template = "{% for m in messages %}{{ m.role }}: {{ m.content }}<|end|>{% endfor %}";
    let tok = Tokenizer::from_gguf(&write_gguf(&spec, Some(template))).unwrap();
    let msgs = [ChatMessage::new("user", "he<|end|>")];
    let ids = tok.apply_chat_template(&msgs, false).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == 0).count(), 1, "{ids:?}");
    assert_eq!(ids.last(), Some(&0));
    assert_eq!(tok.decode(&ids).unwrap(), "user: he<|end|><|end|>");
    let err = tok
        .apply_chat_template(&[ChatMessage::new("<|end|>", "x")], false)
        .unwrap_err();
    assert!(matches!(err, TokenizerError::SpecialTokenInRole { .. }), "{err}");
}

// ---------- tokenizer.json ----------

#[test]
fn hugging_face_tokenizer_json_with_config_and_sibling_template() {
    let spec = bpe_spec("gpt-2");
    let dir = tempfile::tempdir().unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true},
            {"id": 1, "content": "<think>", "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": false}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                          "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                  "byte_fallback": false, "ignore_merges": false, "vocab": vocab,
                  "merges": spec.merges}
    });
    let tj = dir.path().join("tokenizer.json");
    std::fs::write(&tj, json.to_string()).unwrap();
    let cfg = dir.path().join("tokenizer_config.json");
    std::fs::write(&cfg, r#"{"bos_token": "<|end|>", "eos_token": {"content": "<|end|>"}}"#).unwrap();
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{{ messages[0].content }}<|end|>",
    )
    .unwrap();

    let tok = Tokenizer::from_file(&tj, Some(&cfg)).unwrap();
    assert_eq!(
        tok.encode("hello world").unwrap(),
        ids_of(&spec, &["hello", "Ġw", "or", "l", "d"])
    );
    assert_eq!(tok.encode("<think>").unwrap(), vec![1]);
    assert_eq!(tok.encode("<|end|>").unwrap().len(), 7);
    assert_eq!(tok.encode_with_special("<|end|>").unwrap(), vec![0]);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(0), Some(0)));
    assert!(!tok.add_bos(), "no post-processor adds BOS");
    let ids = tok
        .apply_chat_template(&[ChatMessage::new("user", "he")], false)
        .unwrap();
    assert_eq!(ids, vec![id_of(&spec, "he"), 0]);

    let missing = dir.path().join("nope.json");
    let err = Tokenizer::from_file(&missing, None).err().expect("missing file");
    assert!(
        matches!(&err, TokenizerError::Io { path, .. } if path == &missing),
        "{err}"
    );
}
