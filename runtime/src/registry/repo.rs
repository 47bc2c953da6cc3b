//! Finding models and versions in a model repository directory.
//!
//! Two layouts, as Triton and simpler servers use them:
//! * `REPO/NAME/VERSION/model.wasm` — VERSION a positive integer; an optional
//!   `model.safetensors` beside it is offered for download;
//! * `REPO/NAME.wasm` — version 1 (`REPO/NAME.safetensors` optional).
//!
//! Names are restricted to `[A-Za-z0-9_.-]` (not starting with `.`), so a
//! name from a URL can never walk out of the repository.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One version of a model as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub version: u64,
    pub wasm: PathBuf,
    pub safetensors: Option<PathBuf>,
}

/// What `--watch` compares: every file's version, size and mtime.
pub type Fingerprint = Vec<(u64, u64, Option<SystemTime>)>;

/// Whether `name` may be a model name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The model names in `repo`, sorted.
pub fn names(repo: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() {
            if valid_name(file_name) && !versions(repo, file_name)?.is_empty() {
                names.push(file_name.to_string());
            }
        } else if let Some(stem) = file_name.strip_suffix(".wasm")
            && valid_name(stem)
            && !repo.join(stem).is_dir()
        {
            names.push(stem.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The versions of `name` in `repo`, ascending; empty if there is none.
pub fn versions(repo: &Path, name: &str) -> std::io::Result<Vec<Found>> {
    if !valid_name(name) {
        return Ok(Vec::new());
    }
    let dir = repo.join(name);
    let mut found = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0)
            else {
                continue;
            };
            let wasm = entry.path().join("model.wasm");
            if wasm.is_file() {
                let st = entry.path().join("model.safetensors");
                found.push(Found {
                    version,
                    wasm,
                    safetensors: st.is_file().then_some(st),
                });
            }
        }
    } else {
        let wasm = repo.join(format!("{name}.wasm"));
        if wasm.is_file() {
            let st = repo.join(format!("{name}.safetensors"));
            found.push(Found {
                version: 1,
                wasm,
                safetensors: st.is_file().then_some(st),
            });
        }
    }
    found.sort_by_key(|f| f.version);
    Ok(found)
}

/// Size and mtime of every file of `found`.
pub fn fingerprint(found: &[Found]) -> Fingerprint {
    found
        .iter()
        .flat_map(|f| {
            std::iter::once(&f.wasm)
                .chain(&f.safetensors)
                .map(|p| (f.version, p))
        })
        .map(|(v, p)| {
            let m = std::fs::metadata(p).ok();
            (
                v,
                m.as_ref().map_or(0, |m| m.len()),
                m.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("a/1")).unwrap();
        std::fs::create_dir_all(r.join("a/3")).unwrap();
        std::fs::create_dir_all(r.join("a/x")).unwrap();
        std::fs::write(r.join("a/1/model.wasm"), b"1").unwrap();
        std::fs::write(r.join("a/3/model.wasm"), b"3").unwrap();
        std::fs::write(r.join("a/3/model.safetensors"), b"3").unwrap();
        std::fs::write(r.join("b.wasm"), b"b").unwrap();
        std::fs::write(r.join(".hidden.wasm"), b"h").unwrap();
        std::fs::create_dir_all(r.join("empty")).unwrap();
        assert_eq!(names(r).unwrap(), vec!["a", "b"]);
        let v = versions(r, "a").unwrap();
        assert_eq!(v.iter().map(|f| f.version).collect::<Vec<_>>(), vec![1, 3]);
        assert!(v[0].safetensors.is_none() && v[1].safetensors.is_some());
        assert_eq!(versions(r, "b").unwrap()[0].version, 1);
        assert!(versions(r, "../a").unwrap().is_empty());
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["", "..", ".x", "a/b", "a\\b", "%2e%2e"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("digits-v2.1_x"));
    }
}
