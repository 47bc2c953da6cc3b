//! [`LoadedModule`]: a module that passed [`super::Sandbox::load`], ready
//! to be instantiated.

use wasmtime::InstancePre;

use super::limits::{Host, Limits};
use crate::module::ModuleMeta;

/// A module that passed [`Sandbox::load`].
pub struct LoadedModule {
    pub(super) pre: InstancePre<Host>,
    pub(super) meta: Option<ModuleMeta>,
    pub(super) limits: Limits,
    pub(super) from_cache: bool,
    pub(super) relaxed_simd: bool,
    pub(super) input_len: usize,
    pub(super) output_len: usize,
}

impl LoadedModule {
    /// The limits every instance of this module runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Whether the module runs as its relaxed-SIMD twin
    /// ([`module::relaxed_twin`]).
    pub fn relaxed_simd(&self) -> bool {
        self.relaxed_simd
    }
    pub fn input_len(&self) -> usize {
        self.input_len
    }
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    pub fn meta(&self) -> Option<&ModuleMeta> {
        self.meta.as_ref()
    }
}
