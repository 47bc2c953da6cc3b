//! Finding models and versions in a model repository directory.
//!
//! Two layouts, as Triton and simpler servers use them:
//! * `REPO/NAME/VERSION/model.wasm` — VERSION a positive integer; an optional
//!   `model.safetensors` beside it is offered for download. In place of
//!   `model.wasm`, the version may hold `model.keras`, `model.h5` or
//!   `model.onnx`: imported and built on load ([`built`]), the imported
//!   model file offered for download;
//! * `REPO/NAME.wasm` — version 1 (`REPO/NAME.safetensors` optional).
//!
//! Names are restricted to `[A-Za-z0-9_.-]` (not starting with `.`), so a
//! name from a URL can never walk out of the repository. Files are read by
//! [`read_file`]: never through a symbolic link, never from outside the
//! repository, never past a size cap.
//!
//! A directory may also hold one model's files ([`single`]), as KServe's
//! storage initializer leaves them in `/mnt/models`; the server then names
//! the model (`--model_name`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a repository file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0} is a symbolic link; the repository's files and folders must be real ones")]
    Symlink(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0} resolves outside the repository")]
    Outside(PathBuf),
    #[error("{0} changed while it was being opened")]
    Changed(PathBuf),
    #[error("{path} is {size} bytes, over the {cap}-byte cap")]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads `path`, a file under the repository `root`, of at most `cap` bytes.
///
/// No component from `root` down is a symbolic link; the file is opened
/// once, and after opening, the path must still name the very file opened
/// (same device and inode) and resolve inside `root`, so swapping a
/// component for a link between the checks and the open is caught. The
/// size is checked on the opened file and the read stops at `cap + 1`
/// bytes, so the bytes checked are the bytes read. (A hard link into the
/// repository is not refused: making one needs read access to the target
/// already, where the kernel protects hard links, as Linux does by default.)
pub(crate) fn read_file(root: &Path, path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let rel = path
        .strip_prefix(root)
        .map_err(|_| FileError::Outside(path.to_path_buf()))?;
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).map_err(io)?.is_symlink() {
            return Err(FileError::Symlink(at));
        }
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    if !opened.is_file() {
        return Err(FileError::NotAFile(path.to_path_buf()));
    }
    let now = std::fs::symlink_metadata(path).map_err(io)?;
    if now.is_symlink() || !same_file(&opened, &now) {
        return Err(FileError::Changed(path.to_path_buf()));
    }
    let root_real = std::fs::canonicalize(root).map_err(io)?;
    if !std::fs::canonicalize(path)
        .map_err(io)?
        .starts_with(&root_real)
    {
        return Err(FileError::Outside(path.to_path_buf()));
    }
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        cap,
    };
    if opened.len() > cap {
        return Err(too_large(opened.len()));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// One version of a model as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    pub(super) version: u64,
    pub(super) wasm: PathBuf,
    pub(super) safetensors: Option<PathBuf>,
}

/// What `--watch` compares: every file's version, size and mtime.
pub(super) type Fingerprint = Vec<(u64, u64, Option<SystemTime>)>;

/// Whether `name` may be a model name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The model names in `repo`, sorted.
pub(crate) fn names(repo: &Path) -> std::io::Result<Vec<String>> {
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
pub(crate) fn versions(repo: &Path, name: &str) -> std::io::Result<Vec<Found>> {
    if !valid_name(name) {
        return Ok(Vec::new());
    }
    let dir = repo.join(name);
    if dir.is_dir() {
        return numbered(&dir);
    }
    let wasm = repo.join(format!("{name}.wasm"));
    Ok(wasm
        .is_file()
        .then(|| version_one(wasm, repo.join(format!("{name}.safetensors"))))
        .into_iter()
        .collect())
}

/// The versions of the one model `dir` holds, ascending: `VERSION/model.wasm`
/// directories, else `model.wasm` (version 1), else the versions of the
/// repository's only model. Empty if `dir` holds none of these (no model, or
/// a repository of several).
pub(crate) fn single(dir: &Path) -> std::io::Result<Vec<Found>> {
    let found = numbered(dir)?;
    if !found.is_empty() {
        return Ok(found);
    }
    if let Some(wasm) = model_in(dir) {
        return Ok(vec![version_one(wasm, dir.join("model.safetensors"))]);
    }
    match names(dir)?.as_slice() {
        [only] => versions(dir, only),
        _ => Ok(Vec::new()),
    }
}

/// The files a version directory may hold its model in, in order of
/// preference: a built module, or a model [`built`] on load.
const MODEL_FILES: [&str; 4] = ["model.wasm", "model.keras", "model.h5", "model.onnx"];

/// The model file of version directory `dir`, if any.
fn model_in(dir: &Path) -> Option<PathBuf> {
    MODEL_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// The module for `bytes`, read from `path`: the bytes themselves for a
/// `.wasm`; otherwise the Keras or ONNX model imported and built as `kiln
/// build` builds it (the same bytes give the same module, so the compile
/// cache holds it across restarts), with the imported model file.
pub(super) fn built(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), crate::import::AnyModelError> {
    if path.extension().is_some_and(|e| e == "wasm") {
        return Ok((bytes, None));
    }
    let model = crate::import::model_file(&bytes, path)?;
    let wasm = crate::module::build(&model, &crate::module::sha256_hex(&bytes))?;
    let file = model
        .to_bytes()
        .map_err(|e| crate::import::AnyModelError::Save(e.to_string()))?;
    Ok((wasm, Some(file)))
}

/// The `VERSION/model.wasm` (or [`MODEL_FILES`]) files in `dir`, ascending.
fn numbered(dir: &Path) -> std::io::Result<Vec<Found>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
        else {
            continue;
        };
        if let Some(wasm) = model_in(&entry.path()) {
            let st = entry.path().join("model.safetensors");
            found.push(Found {
                version,
                wasm,
                safetensors: st.is_file().then_some(st),
            });
        }
    }
    found.sort_by_key(|f| f.version);
    Ok(found)
}

fn version_one(wasm: PathBuf, safetensors: PathBuf) -> Found {
    Found {
        version: 1,
        wasm,
        safetensors: safetensors.is_file().then_some(safetensors),
    }
}

/// Size and mtime of every file of `found`.
pub(super) fn fingerprint(found: &[Found]) -> Fingerprint {
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

    #[cfg(unix)]
    #[test]
    fn links_outside_paths_and_large_files_are_refused() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (r, outside) = (dir.path().join("repo"), dir.path().join("secret"));
        std::fs::create_dir_all(r.join("a/1")).unwrap();
        std::fs::write(&outside, b"secret").unwrap();
        std::fs::write(r.join("a/1/model.wasm"), b"wasm").unwrap();
        assert_eq!(
            read_file(&r, &r.join("a/1/model.wasm"), 4).unwrap(),
            b"wasm"
        );
        let e = read_file(&r, &r.join("a/1/model.wasm"), 3).unwrap_err();
        assert!(
            matches!(
                e,
                FileError::TooLarge {
                    size: 4,
                    cap: 3,
                    ..
                }
            ),
            "{e}"
        );
        symlink(&outside, r.join("a/1/model.safetensors")).unwrap();
        let e = read_file(&r, &r.join("a/1/model.safetensors"), 99).unwrap_err();
        assert!(matches!(e, FileError::Symlink(_)), "{e}");
        // A linked folder, even one inside the repository.
        symlink(r.join("a"), r.join("b")).unwrap();
        let e = read_file(&r, &r.join("b/1/model.wasm"), 99).unwrap_err();
        assert!(matches!(e, FileError::Symlink(_)), "{e}");
        let e = read_file(&r, &outside, 99).unwrap_err();
        assert!(matches!(e, FileError::Outside(_)), "{e}");
    }

    #[test]
    fn one_model_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        assert!(single(r).unwrap().is_empty());
        // A flat file of any name, as a storageUri naming one file leaves it.
        std::fs::write(r.join("digits.wasm"), b"d").unwrap();
        assert_eq!(single(r).unwrap()[0].wasm, r.join("digits.wasm"));
        // Two models: a repository, not one model.
        std::fs::write(r.join("iris.wasm"), b"i").unwrap();
        assert!(single(r).unwrap().is_empty());
        // model.wasm names the model's own file, whatever else is there.
        std::fs::write(r.join("model.wasm"), b"m").unwrap();
        std::fs::write(r.join("model.safetensors"), b"m").unwrap();
        let v = single(r).unwrap();
        assert_eq!((v.len(), v[0].version), (1, 1));
        assert!(v[0].safetensors.is_some());
        // Version directories win over model.wasm.
        for n in ["2", "10"] {
            std::fs::create_dir_all(r.join(n)).unwrap();
            std::fs::write(r.join(n).join("model.wasm"), n).unwrap();
        }
        let v = single(r).unwrap();
        assert_eq!(v.iter().map(|f| f.version).collect::<Vec<_>>(), vec![2, 10]);
    }

    #[test]
    fn names_cannot_escape() {
        for bad in ["", "..", ".x", "a/b", "a\\b", "%2e%2e"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("digits-v2.1_x"));
    }

    /// A Keras file builds the same module bytes every time, so the compile
    /// cache (keyed by the module's sha256) holds it across restarts.
    #[test]
    fn keras_files_build_the_same_module_every_time() {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/keras/mlp.keras"),
        )
        .unwrap();
        let path = Path::new("mlp/1/model.keras");
        let (a, file) = built(path, bytes.clone()).unwrap();
        let (b, _) = built(path, bytes).unwrap();
        assert!(a.starts_with(b"\0asm") && file.is_some());
        assert_eq!(a, b);
        assert_eq!(built(Path::new("m.wasm"), b"x".to_vec()).unwrap().0, b"x");
    }
}
