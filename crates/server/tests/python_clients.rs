//! The real server on a loopback socket driven by the official `ollama` and `openai` Python
//! clients and plain `requests` (tests/python/test_clients.py), installed by pip into a
//! virtualenv by tests/python/setup.sh. If pip cannot install them, this test fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_server::{AppState, ServeConfig, StateOptions};
use common::{KESTREL, default_model_path, reference_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_clients_work_against_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-clients-venv");
    let setup = root.join("tests/python/setup.sh");
    let status = tokio::task::spawn_blocking(move || Command::new("bash").arg(setup).arg(&venv).status())
        .await
        .expect("joins")
        .expect("bash runs");
    assert!(
        status.success(),
        "tests/python/setup.sh could not install the client libraries"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServeConfig::load(&root.join("configs/serve.toml")).expect("configs/serve.toml");
    let config = ServeConfig {
        model: None,
        adapters_dir: None,
        ..config
    };
    let options = StateOptions {
        state_dir: Some(dir.path().to_path_buf()),
        ..StateOptions::default()
    };
    let (state, _) = AppState::load(&default_model_path(), config, options).expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(airlock_server::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let python = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-clients-venv/bin/python");
    let script = root.join("tests/python/test_clients.py");
    let adapter = reference_path(KESTREL);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("AIRLOCK_URL", &url)
            .env("AIRLOCK_ADAPTER_PATH", adapter)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
    })
    .await
    .expect("joins")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Python client tests failed:\n{stdout}");

    let _ = stop.send(());
    server.await.expect("joins").expect("the server shuts down cleanly");
}
