//! The HDF5 files Keras writes, read through `hdf5-reader` (pure Rust,
//! read-only) with bounds on what a hostile file can make it allocate:
//! the whole file is at most [`MAX_FILE_BYTES`](super::MAX_FILE_BYTES),
//! one dataset read at most [`MAX_READ_BYTES`], one chunk at most
//! [`MAX_CHUNK_BYTES`] and one object header at most [`MAX_HEADER_BYTES`].
//! Every failure becomes a [`KerasError::Hdf5`] naming the file and the
//! path inside it.

use hdf5_reader::group::Group;
use hdf5_reader::{Attribute, Hdf5File, OpenOptions};
use ndarray::ArrayD;

use super::KerasError;

/// The most bytes one dataset or attribute read may decode (a gzip bomb
/// stops here).
pub(super) const MAX_READ_BYTES: usize = 256 << 20;
/// The largest decoded chunk of a chunked dataset.
pub(super) const MAX_CHUNK_BYTES: usize = 64 << 20;
/// The largest object header (all its continuation chunks together).
pub(super) const MAX_HEADER_BYTES: usize = 4 << 20;
/// How many `name0`, `name1`, … pieces a long attribute may be split into
/// (Keras splits attributes over 64 KiB).
const MAX_ATTRIBUTE_PIECES: usize = 4096;

/// An open HDF5 file and the name errors give it.
pub(super) struct H5 {
    file: Hdf5File,
    name: &'static str,
}

impl H5 {
    pub(super) fn open(bytes: Vec<u8>, name: &'static str) -> Result<Self, KerasError> {
        let options = OpenOptions::default()
            .with_max_read_bytes(MAX_READ_BYTES)
            .with_max_chunk_bytes(MAX_CHUNK_BYTES)
            .with_max_object_header_bytes(MAX_HEADER_BYTES)
            .with_chunk_cache_bytes(0);
        let file =
            Hdf5File::from_vec_with_options(bytes, options).map_err(|e| KerasError::Hdf5 {
                file: name.into(),
                path: "/".into(),
                problem: format!("the file does not open ({e})"),
            })?;
        Ok(H5 { file, name })
    }

    pub(super) fn err(&self, path: &str, problem: impl Into<String>) -> KerasError {
        KerasError::Hdf5 {
            file: self.name.into(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            problem: problem.into(),
        }
    }

    pub(super) fn group(&self, path: &str) -> Result<Group, KerasError> {
        let g = if path.is_empty() {
            self.file.root_group()
        } else {
            self.file.group(path)
        };
        g.map_err(|e| self.err(path, format!("no such group ({e})")))
    }

    /// The names of a group's members (groups and datasets).
    pub(super) fn members(&self, path: &str) -> Result<Vec<String>, KerasError> {
        let (groups, datasets) = self
            .group(path)?
            .member_names()
            .map_err(|e| self.err(path, e.to_string()))?;
        Ok(groups.into_iter().chain(datasets).collect())
    }

    fn attribute(&self, path: &str, name: &str) -> Result<Option<Attribute>, KerasError> {
        let attrs = self
            .group(path)?
            .attributes()
            .map_err(|e| self.err(path, format!("its attributes do not read ({e})")))?;
        Ok(attrs.into_iter().find(|a| a.name == name))
    }

    /// A string attribute (fixed-length or variable-length), if present.
    pub(super) fn string(&self, path: &str, name: &str) -> Result<Option<String>, KerasError> {
        let Some(a) = self.attribute(path, name)? else {
            return Ok(None);
        };
        a.read_string()
            .map(Some)
            .map_err(|e| self.err(path, format!("attribute `{name}` is not a string ({e})")))
    }

    /// A string-array attribute, joined from the pieces `name0`, `name1`, …
    /// when Keras split it; `None` when absent. An empty attribute of any
    /// type (Keras writes `[]` as float64) is an empty list.
    pub(super) fn strings(
        &self,
        path: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, KerasError> {
        if let Some(a) = self.attribute(path, name)? {
            return self.read_strings(path, name, &a).map(Some);
        }
        let mut all = Vec::new();
        for i in 0..MAX_ATTRIBUTE_PIECES {
            let piece = format!("{name}{i}");
            match self.attribute(path, &piece)? {
                Some(a) => all.extend(self.read_strings(path, &piece, &a)?),
                None if i == 0 => return Ok(None),
                None => return Ok(Some(all)),
            }
        }
        Err(self.err(
            path,
            format!("attribute `{name}` is split into too many pieces"),
        ))
    }

    fn read_strings(
        &self,
        path: &str,
        name: &str,
        a: &Attribute,
    ) -> Result<Vec<String>, KerasError> {
        match a.read_strings() {
            Ok(v) => Ok(v),
            Err(e) => match a.num_elements() {
                Ok(0) => Ok(Vec::new()),
                _ => Err(self.err(
                    path,
                    format!("attribute `{name}` is not a string array ({e})"),
                )),
            },
        }
    }

    /// A float32 dataset.
    pub(super) fn f32s(&self, path: &str) -> Result<ArrayD<f32>, KerasError> {
        let d = self
            .file
            .dataset(path)
            .map_err(|e| self.err(path, format!("no such dataset ({e})")))?;
        d.read_array::<f32>()
            .map_err(|e| self.err(path, format!("does not read as float32 ({e})")))
    }
}
