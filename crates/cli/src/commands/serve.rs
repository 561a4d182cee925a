//! `airlock serve`: the Ollama- and OpenAI-compatible HTTP server over one base model and its
//! adapters. Loopback only unless an API key is set; stops cleanly on SIGINT / SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use airlock_server::{AppState, ServeConfig, StateOptions};
use anyhow::{Context, bail};

use crate::loaded;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to bind; anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 11434)]
    pub port: u16,
    /// A store name or a GGUF path (default: the config's, $AIRLOCK_MODEL, or the default model).
    #[arg(long)]
    pub model: Option<String>,
    /// Load every PEFT adapter directory in DIR at start (overrides the config's adapters_dir).
    #[arg(long, value_name = "DIR")]
    pub adapters: Option<PathBuf>,
    /// Serving config (TOML; see configs/serve.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "AIRLOCK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

fn bind_address(host: &str, port: u16, has_key: bool) -> anyhow::Result<SocketAddr> {
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .with_context(|| format!("--host {host}: give an IP address such as 127.0.0.1"))?
    };
    if !ip.is_loopback() && !has_key {
        bail!("binding {ip} exposes the server beyond this machine: set --api-key (or AIRLOCK_API_KEY)");
    }
    Ok(SocketAddr::new(ip, port))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let addr = bind_address(
        &args.host,
        args.port,
        args.api_key.as_ref().is_some_and(|k| !k.is_empty()),
    )?;
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    if args.model.is_some() {
        config.model = args.model.clone();
    }
    if args.adapters.is_some() {
        config.adapters_dir = args.adapters.clone();
    }
    let path = loaded::resolve(config.model.as_deref())?;
    let store = airlock_store::Store::from_env().ok();
    let sha256 = store
        .as_ref()
        .and_then(|s| s.list().ok())
        .and_then(|models| models.into_iter().find(|m| m.path == path))
        .map(|m| m.sha256);
    let options = StateOptions {
        api_key: args.api_key.filter(|k| !k.is_empty()),
        state_dir: store.as_ref().map(|s| s.root().to_path_buf()),
        store,
        sha256,
    };
    eprintln!("loading {}", path.display());
    let (state, warnings) = AppState::load(&path, config, options)?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!(
            "airlock {} serving {} ({} adapters) on http://{}",
            airlock_server::VERSION,
            state.model.name,
            state.adapters.len(),
            listener.local_addr()?
        );
        airlock_server::serve(listener, state, airlock_server::shutdown_signal()).await?;
        eprintln!("airlock stopped");
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::bind_address;

    #[test]
    fn only_loopback_binds_without_an_api_key() {
        assert!(bind_address("127.0.0.1", 1, false).is_ok());
        assert!(bind_address("localhost", 1, false).is_ok());
        assert!(bind_address("::1", 1, false).is_ok());
        assert!(bind_address("0.0.0.0", 1, false).is_err());
        assert!(bind_address("0.0.0.0", 1, true).is_ok());
        assert!(bind_address("example", 1, true).is_err());
    }
}
