//! `airlock inspect MODEL`: architecture, quantization types, sizes and chat template.

use std::collections::BTreeMap;

use airlock_gguf::GgufFile;
use airlock_model::LlamaConfig;

use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A store name or a GGUF path (default: the default model).
    pub model: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = loaded::resolve(args.model.as_deref())?;
    let file = GgufFile::open(&path)?;
    let size = std::fs::metadata(&path)?.len();
    println!("file          {} ({})", path.display(), human_size(size));
    println!("gguf version  {}", file.version);
    println!("architecture  {}", file.architecture()?);
    if let Ok(name) = file.get_str("general.name") {
        println!("name          {name}");
    }
    match LlamaConfig::from_gguf(&file) {
        Ok(c) => {
            println!(
                "shape         {} layers, dim {}, ffn {}, {} heads ({} kv), head dim {}, vocab {}",
                c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size
            );
            println!(
                "rope base     {}   rms eps {}   context {}   tied embeddings {}",
                c.rope_base, c.rms_eps, c.context_length, c.tied_embeddings
            );
        }
        Err(e) => println!("shape         not runnable: {e}"),
    }
    let params: u64 = file.tensors.iter().map(|t| t.n_elements()).sum();
    println!(
        "parameters    {:.1} M in {} tensors",
        params as f64 / 1e6,
        file.tensors.len()
    );
    println!("quantization  {}", dominant_type(&file));
    for (ty, (count, bytes)) in type_table(&file) {
        println!("  {ty:<8} {count:>4} tensors {:>10}", human_size(bytes));
    }
    match file.get_str("tokenizer.chat_template") {
        Ok(t) => println!("chat template\n{t}"),
        Err(_) => println!("chat template (none)"),
    }
    Ok(())
}

/// Tensor count and bytes per block type.
fn type_table(file: &GgufFile) -> BTreeMap<&'static str, (usize, u64)> {
    let mut table = BTreeMap::new();
    for t in &file.tensors {
        let e = table.entry(t.ggml_type.name()).or_insert((0, 0));
        e.0 += 1;
        e.1 += t.n_bytes() as u64;
    }
    table
}

/// The block type holding the most bytes: what people call the model's quantization.
pub fn dominant_type(file: &GgufFile) -> String {
    type_table(file)
        .into_iter()
        .max_by_key(|(_, (_, bytes))| *bytes)
        .map_or("-".into(), |(ty, _)| ty.to_string())
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
