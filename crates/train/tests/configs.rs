//! Every training recipe in `configs/` parses and resolves (a typo in a shipped recipe fails
//! here, not in the middle of a training run).

use std::path::PathBuf;

use airlock_train::TrainOptions;

#[test]
fn shipped_training_configs_parse_and_resolve() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for name in ["medical-billing.toml", "company-glossary.toml"] {
        let options = TrainOptions::from_toml_file(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let config = options.resolve().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.rank, 8, "{name}");
    }
}

#[test]
fn an_unknown_option_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "rank = 8\nlearning_rat = 0.001\n").expect("write");
    let err = TrainOptions::from_toml_file(&path).expect_err("refused").to_string();
    assert!(err.contains("learning_rat"), "{err}");
}
