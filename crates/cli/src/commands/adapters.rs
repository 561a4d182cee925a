//! `airlock adapters export-gguf|merge`: hand a trained adapter to llama.cpp, either as its GGUF
//! LoRA file (`llama-cli -m base.gguf --lora adapter.gguf`) or folded into a copy of the base.

use std::path::PathBuf;

use airlock_gguf::{GgmlType, GgufFile};
use anyhow::Context;

use crate::loaded;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write an adapter in llama.cpp's GGUF LoRA format.
    ExportGguf(Target),
    /// Write the base model with an adapter merged into its weights, as GGUF.
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct Target {
    /// An adapter folder (PEFT layout) or a name under adapters/.
    pub adapter: String,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Base model: a store name or a GGUF path (default: $AIRLOCK_MODEL or the default model).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Multiplies the adapter's own alpha/r scale.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f32,
    /// Storage of the merged projections (the others keep their quantization).
    #[arg(long, value_enum, default_value_t = Dtype::F16)]
    pub dtype: Dtype,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Dtype {
    F16,
    F32,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::ExportGguf(target) => {
            let (base, adapter) = open(&target)?;
            airlock_adapter::export_gguf(&adapter, base.architecture()?, &target.out)?;
            eprintln!("wrote {} ({} LoRA pairs)", target.out.display(), adapter.pairs.len());
        }
        Command::Merge(args) => {
            let ty = match args.dtype {
                Dtype::F16 => GgmlType::F16,
                Dtype::F32 => GgmlType::F32,
            };
            let (base, adapter) = open(&args.target)?;
            airlock_adapter::merge_into_gguf(&base, &adapter, args.scale, ty, &args.target.out)?;
            eprintln!(
                "wrote {} ({} projections merged)",
                args.target.out.display(),
                adapter.pairs.len()
            );
        }
    }
    Ok(())
}

/// The base GGUF and the adapter, checked against it.
fn open(target: &Target) -> anyhow::Result<(GgufFile, airlock_adapter::Adapter)> {
    let path = loaded::resolve(target.model.as_deref())?;
    let base = GgufFile::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let config = airlock_model::LlamaConfig::from_gguf(&base)?;
    let adapter = airlock_adapter::load_peft(&super::adapter_dir(&target.adapter), &config)?;
    Ok((base, adapter))
}
