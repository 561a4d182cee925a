//! Loads a Hugging Face Llama checkpoint: `config.json` plus `model.safetensors` (or shards
//! listed in `model.safetensors.index.json`), F32/F16/BF16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::{HostTensor, WeightSource, permute_rope_rows};
use crate::{LlamaConfig, ModelError, WeightName};

pub struct SafetensorsSource {
    config: LlamaConfig,
    /// Each shard's path and whole contents (read once; no `unsafe` mmap outside `gguf`).
    shards: Vec<(PathBuf, Vec<u8>)>,
    /// Tensor name -> index into `shards`.
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl SafetensorsSource {
    /// `dir` holds `config.json` and the safetensors file(s).
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let config = LlamaConfig::from_hf_json(&read_to_string(&config_path)?)?;
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index_path.exists() {
            let index: ShardIndex =
                serde_json::from_str(&read_to_string(&index_path)?).map_err(|source| ModelError::Index {
                    path: index_path.clone(),
                    source,
                })?;
            let mut names: Vec<&String> = index.weight_map.values().collect();
            names.sort();
            names.dedup();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            let tensors = SafeTensors::deserialize(&bytes).map_err(|source| ModelError::Safetensors {
                path: path.clone(),
                source,
            })?;
            for name in tensors.names() {
                index.insert(name.to_string(), shards.len());
            }
            shards.push((path, bytes));
        }
        Ok(Self { config, shards, index })
    }
}

fn read_to_string(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl WeightSource for SafetensorsSource {
    fn config(&self) -> &LlamaConfig {
        &self.config
    }

    fn load(&self, name: WeightName) -> Result<Option<HostTensor>, ModelError> {
        let key = name.hf();
        let Some(&shard) = self.index.get(&key) else {
            return Ok(None);
        };
        let (path, bytes) = &self.shards[shard];
        let tensors = SafeTensors::deserialize(bytes).map_err(|source| ModelError::Safetensors {
            path: path.clone(),
            source,
        })?;
        let view = tensors.tensor(&key).map_err(|source| ModelError::Safetensors {
            path: path.clone(),
            source,
        })?;
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::Dtype {
                    name: key,
                    dtype: format!("{other:?}"),
                });
            }
        };
        let shape = view.shape().to_vec();
        let data = match name {
            WeightName::Layer(_, w) if let Some(heads) = self.config.rope_heads(w) => {
                let c = &self.config;
                let cols = shape.get(1).copied().unwrap_or(0);
                if shape != [heads * c.head_dim, cols] {
                    return Err(ModelError::Shape {
                        name: key,
                        expected: vec![heads * c.head_dim, cols],
                        actual: shape,
                    });
                }
                permute_rope_rows(&data, heads, c.head_dim, cols)
            }
            _ => data,
        };
        Ok(Some(HostTensor::f32(shape, data)))
    }
}
