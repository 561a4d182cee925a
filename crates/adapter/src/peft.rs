//! PEFT's LoRA layout: `adapter_config.json` + `adapter_model.safetensors` with keys
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{q,k,v,o,gate,up,down}_proj.lora_{A,B}.weight`,
//! A `[r, in]`, B `[out, r]`, rows of B in Hugging Face order. In memory, B of q/k is kept in
//! the model's GGUF row order (permuted as llama.cpp's converter permutes those weights).

use std::collections::BTreeMap;
use std::path::Path;

use airlock_model::{HostTensor, LayerWeight, LlamaConfig, LoraPair, permute_rope_rows, unpermute_rope_rows};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::config::{PeftConfigFile, TargetModules, module_name, projection};
use crate::{AdapterError, LoraConfig};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const KEY_PREFIX: &str = "base_model.model.model.layers.";

/// A LoRA adapter in memory, checked against a base model.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub config: LoraConfig,
    /// One pair per adapted projection, B rows in GGUF order.
    pub pairs: Vec<LoraPair>,
    /// SHA-256 of the weights file (hex); empty for an adapter not read from disk.
    pub sha256: String,
    /// Bytes of the weights file.
    pub size: u64,
}

fn key(layer: usize, w: LayerWeight, factor: char) -> String {
    format!("{KEY_PREFIX}{layer}.{}.lora_{factor}.weight", w.hf_module())
}

/// Splits a PEFT key into layer, projection and factor (`'A'` / `'B'`).
fn parse_key(key: &str) -> Option<(usize, LayerWeight, char)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (layer, rest) = rest.split_once('.')?;
    let rest = rest.strip_suffix(".weight")?;
    let (module, factor) = rest.rsplit_once(".lora_")?;
    let w = projection(module.rsplit('.').next()?)?;
    (w.hf_module() == module).then_some(())?;
    let factor = match factor {
        "A" => 'A',
        "B" => 'B',
        _ => return None,
    };
    Some((layer.parse().ok()?, w, factor))
}

/// Reads a PEFT adapter directory and checks every tensor against the base model's shapes.
pub fn load_peft(dir: &Path, base: &LlamaConfig) -> Result<Adapter, AdapterError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = read_to_string(&config_path)?;
    let file: PeftConfigFile = serde_json::from_str(&text).map_err(|source| AdapterError::Config {
        path: config_path.clone(),
        source,
    })?;
    let unsupported = |reason: &str| {
        Err(AdapterError::Unsupported {
            path: config_path.clone(),
            reason: reason.into(),
        })
    };
    if file.peft_type.as_deref().is_some_and(|t| t != "LORA") {
        return unsupported("peft_type is not LORA");
    }
    if file.use_dora {
        return unsupported("DoRA adapters (use_dora) are not supported");
    }
    if file.fan_in_fan_out {
        return unsupported("fan_in_fan_out layouts are not supported");
    }
    if file.bias.as_deref().is_some_and(|b| b != "none") {
        return unsupported("adapters with trained biases are not supported");
    }
    if file.r == 0 {
        return unsupported("r must be positive");
    }

    let weights_path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights_path).map_err(|source| AdapterError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let tensors = SafeTensors::deserialize(&bytes).map_err(|source| AdapterError::Safetensors {
        path: weights_path.clone(),
        source,
    })?;

    let mut factors: BTreeMap<(usize, LayerWeight), [Option<HostTensor>; 2]> = BTreeMap::new();
    for (key, view) in tensors.tensors() {
        let (layer, w, factor) = parse_key(&key).ok_or_else(|| AdapterError::UnknownTensor {
            path: weights_path.clone(),
            key: key.clone(),
        })?;
        if layer >= base.n_layers {
            return Err(AdapterError::Layer {
                path: weights_path.clone(),
                key,
                layer,
                n_layers: base.n_layers,
            });
        }
        let [out, inp] = base.projection_shape(w);
        let expected = if factor == 'A' {
            vec![file.r, inp]
        } else {
            vec![out, file.r]
        };
        if view.shape() != expected {
            return Err(AdapterError::Shape {
                path: weights_path.clone(),
                key,
                expected,
                actual: view.shape().to_vec(),
            });
        }
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| AdapterError::Dtype {
            path: weights_path.clone(),
            key: key.clone(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        let data = match base.rope_heads(w) {
            Some(heads) if factor == 'B' => permute_rope_rows(&data, heads, base.head_dim, file.r),
            _ => data,
        };
        factors.entry((layer, w)).or_default()[usize::from(factor == 'B')] = Some(HostTensor::f32(expected, data));
    }

    let mut pairs = Vec::with_capacity(factors.len());
    for ((layer, weight), [a, b]) in factors {
        let unpaired = |missing| AdapterError::Unpaired {
            path: weights_path.clone(),
            key: key(layer, weight, 'A'),
            missing,
        };
        let a = a.ok_or_else(|| unpaired('A'))?;
        let b = b.ok_or_else(|| unpaired('B'))?;
        pairs.push(LoraPair { layer, weight, a, b });
    }
    if pairs.is_empty() {
        return Err(AdapterError::Empty { path: weights_path });
    }
    let mut targets: Vec<LayerWeight> = pairs.iter().map(|p| p.weight).collect();
    targets.sort();
    targets.dedup();
    let config = LoraConfig {
        r: file.r,
        alpha: file.lora_alpha,
        dropout: file.lora_dropout,
        targets,
        use_rslora: file.use_rslora,
        base_model: file.base_model_name_or_path,
    };
    Ok(Adapter {
        config,
        pairs,
        sha256,
        size: bytes.len() as u64,
    })
}

/// Writes `adapter` in PEFT's layout (B rows back in Hugging Face order), each file to a
/// temporary name first and then renamed, so a crash never leaves a half-written adapter.
pub fn save_peft(adapter: &Adapter, dir: &Path, base: &LlamaConfig) -> Result<(), AdapterError> {
    std::fs::create_dir_all(dir).map_err(|source| AdapterError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for pair in &adapter.pairs {
        let a = pair.a.clone().into_f32()?;
        let b = pair.b.clone().into_f32()?;
        let b = match base.rope_heads(pair.weight) {
            Some(heads) => unpermute_rope_rows(&b, heads, base.head_dim, adapter.config.r),
            None => b,
        };
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        raw.push((key(pair.layer, pair.weight, 'A'), pair.a.shape.clone(), bytes(&a)));
        raw.push((key(pair.layer, pair.weight, 'B'), pair.b.shape.clone(), bytes(&b)));
    }
    let weights_path = dir.join(WEIGHTS_FILE);
    let views = raw
        .iter()
        .map(|(k, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|source| AdapterError::Safetensors {
                    path: weights_path.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|source| AdapterError::Safetensors {
        path: weights_path.clone(),
        source,
    })?;
    write_atomic(&weights_path, &bytes)?;

    let c = &adapter.config;
    let file = PeftConfigFile {
        peft_type: Some("LORA".into()),
        r: c.r,
        lora_alpha: c.alpha,
        lora_dropout: c.dropout,
        target_modules: TargetModules::List(c.targets.iter().map(|&w| module_name(w).to_string()).collect()),
        use_rslora: c.use_rslora,
        use_dora: false,
        base_model_name_or_path: c.base_model.clone(),
        bias: Some("none".into()),
        task_type: Some("CAUSAL_LM".into()),
        fan_in_fan_out: false,
    };
    let config_path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&file).map_err(|source| AdapterError::Config {
        path: config_path.clone(),
        source,
    })?;
    write_atomic(&config_path, text.as_bytes())
}

/// Writes to `path.tmp`, syncs, then renames over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AdapterError> {
    use std::io::Write;
    let io = |source| AdapterError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read_to_string(path: &Path) -> Result<String, AdapterError> {
    std::fs::read_to_string(path).map_err(|source| AdapterError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_keys_parse_into_layer_projection_and_factor() {
        assert_eq!(
            parse_key("base_model.model.model.layers.12.self_attn.k_proj.lora_B.weight"),
            Some((12, LayerWeight::K, 'B'))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"),
            Some((0, LayerWeight::Down, 'A'))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight"),
            None,
            "q_proj lives in self_attn"
        );
        assert_eq!(parse_key("base_model.model.lm_head.lora_A.weight"), None);
        assert_eq!(
            key(3, LayerWeight::Up, 'A'),
            "base_model.model.model.layers.3.mlp.up_proj.lora_A.weight"
        );
    }
}
