//! `airlock pull [MODEL]`: fetch a model into the local store, verifying its checksum.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model name (default: the default model).
    pub model: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = airlock_store::Store::from_env()?;
    let name = args.model.as_deref().unwrap_or(airlock_store::DEFAULT_MODEL);
    let path = store.pull(name, true)?;
    println!("{}", path.display());
    Ok(())
}
