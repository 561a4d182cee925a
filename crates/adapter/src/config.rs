//! `adapter_config.json` as PEFT writes it, resolved once into [`LoraConfig`].

use serde::{Deserialize, Serialize};

use airlock_model::LayerWeight;

/// The resolved LoRA hyper-parameters of an adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    pub dropout: f32,
    /// Projections the adapter targets.
    pub targets: Vec<LayerWeight>,
    /// rsLoRA scales by `alpha / sqrt(r)` instead of `alpha / r` (Kalajdzievski, 2023).
    pub use_rslora: bool,
    /// Informational: the model the adapter was trained on.
    pub base_model: Option<String>,
}

impl LoraConfig {
    /// The factor multiplying `B A x`.
    pub fn scale(&self) -> f32 {
        if self.use_rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha / self.r as f32
        }
    }
}

/// The file's fields that matter here; PEFT writes many more, which are ignored.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct PeftConfigFile {
    pub peft_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f32,
    #[serde(default)]
    pub lora_dropout: f32,
    #[serde(default)]
    pub target_modules: TargetModules,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub bias: Option<String>,
    pub task_type: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
}

/// PEFT allows a list of module names or one regex string.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

impl Default for TargetModules {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

/// PEFT's short module name (`q_proj`) of a projection.
pub fn module_name(w: LayerWeight) -> &'static str {
    let path = w.hf_module();
    path.rsplit('.').next().unwrap_or(path)
}

/// The projection a PEFT module name stands for.
pub fn projection(module: &str) -> Option<LayerWeight> {
    LayerWeight::PROJECTIONS.into_iter().find(|&w| module_name(w) == module)
}
