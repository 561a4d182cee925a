//! `airlock list`: the models in the local store, with size and quantization.

use airlock_gguf::GgufFile;

pub fn run() -> anyhow::Result<()> {
    let store = airlock_store::Store::from_env()?;
    println!("{:<32} {:>10} {:<8} PATH", "NAME", "SIZE", "QUANT");
    for model in store.list()? {
        let quant = GgufFile::open(&model.path)
            .map(|f| super::inspect::dominant_type(&f))
            .unwrap_or_else(|_| "?".into());
        println!(
            "{:<32} {:>10} {:<8} {}",
            model.name,
            super::inspect::human_size(model.size),
            quant,
            model.path.display()
        );
    }
    Ok(())
}
