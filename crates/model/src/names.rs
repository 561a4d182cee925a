//! Weight names are data: one enum for every tensor the network has, and one name table per
//! file format (GGUF `blk.N.attn_q.weight`, Hugging Face `model.layers.N.self_attn.q_proj.weight`).

/// A tensor inside one transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerWeight {
    AttnNorm,
    Q,
    K,
    V,
    O,
    FfnNorm,
    Gate,
    Up,
    Down,
}

impl LayerWeight {
    /// The seven linear projections LoRA adapters can target, in PEFT's naming order.
    pub const PROJECTIONS: [LayerWeight; 7] = [
        LayerWeight::Q,
        LayerWeight::K,
        LayerWeight::V,
        LayerWeight::O,
        LayerWeight::Gate,
        LayerWeight::Up,
        LayerWeight::Down,
    ];

    fn gguf(self) -> &'static str {
        match self {
            LayerWeight::AttnNorm => "attn_norm",
            LayerWeight::Q => "attn_q",
            LayerWeight::K => "attn_k",
            LayerWeight::V => "attn_v",
            LayerWeight::O => "attn_output",
            LayerWeight::FfnNorm => "ffn_norm",
            LayerWeight::Gate => "ffn_gate",
            LayerWeight::Up => "ffn_up",
            LayerWeight::Down => "ffn_down",
        }
    }

    /// Hugging Face module path inside a layer (`self_attn.q_proj`); PEFT uses the same.
    pub fn hf_module(self) -> &'static str {
        match self {
            LayerWeight::AttnNorm => "input_layernorm",
            LayerWeight::Q => "self_attn.q_proj",
            LayerWeight::K => "self_attn.k_proj",
            LayerWeight::V => "self_attn.v_proj",
            LayerWeight::O => "self_attn.o_proj",
            LayerWeight::FfnNorm => "post_attention_layernorm",
            LayerWeight::Gate => "mlp.gate_proj",
            LayerWeight::Up => "mlp.up_proj",
            LayerWeight::Down => "mlp.down_proj",
        }
    }
}

/// Every tensor of a Llama checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightName {
    Embedding,
    OutputNorm,
    Output,
    Layer(usize, LayerWeight),
}

impl WeightName {
    pub fn gguf(self) -> String {
        match self {
            WeightName::Embedding => "token_embd.weight".into(),
            WeightName::OutputNorm => "output_norm.weight".into(),
            WeightName::Output => "output.weight".into(),
            WeightName::Layer(i, w) => format!("blk.{i}.{}.weight", w.gguf()),
        }
    }

    pub fn hf(self) -> String {
        match self {
            WeightName::Embedding => "model.embed_tokens.weight".into(),
            WeightName::OutputNorm => "model.norm.weight".into(),
            WeightName::Output => "lm_head.weight".into(),
            WeightName::Layer(i, w) => format!("model.layers.{i}.{}.weight", w.hf_module()),
        }
    }
}
