//! The CUDA entry points of a build without the `cuda` feature: each returns
//! [`RuntimeError::NoDevice`], so callers need no `cfg`.

use super::DeviceInfo;
use crate::backend::{Backend, Execution};
use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use pigeon_ir::plan::Plan;

fn missing<T>() -> Result<T> {
    Err(RuntimeError::NoDevice("pigeon was built without the `cuda` feature".into()))
}

/// Always [`RuntimeError::NoDevice`] in this build.
pub fn probe(_ordinal: usize) -> Result<DeviceInfo> {
    missing()
}

/// Always [`RuntimeError::NoDevice`] in this build.
pub fn compile_ptx(_source: &str, _arch: &str) -> Result<String> {
    missing()
}

/// Always [`RuntimeError::NoDevice`] in this build.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    missing()
}

/// The CUDA back end; cannot be created in this build.
#[derive(Debug)]
pub struct CudaBackend {
    info: DeviceInfo,
}

impl CudaBackend {
    /// Always [`RuntimeError::NoDevice`] in this build.
    pub fn new(_ordinal: usize, _options: pigeon_codegen::Options) -> Result<Self> {
        missing()
    }

    /// Always [`RuntimeError::NoDevice`] in this build.
    pub fn execute_program(
        &self,
        _plan: &Plan,
        _program: &pigeon_codegen::CudaProgram,
        _graph: &HeteroGraph,
        _inputs: &[(String, Tensor)],
        _weights: &WeightStore,
    ) -> Result<Execution> {
        missing()
    }

    /// Always [`RuntimeError::NoDevice`] in this build.
    pub fn preload_ptx(&self, _plan: &Plan, _ptx: &str) -> Result<()> {
        missing()
    }

    /// The device (unreachable: no value of this type exists in this build).
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn execute(
        &self,
        _plan: &Plan,
        _graph: &HeteroGraph,
        _inputs: &[(String, Tensor)],
        _weights: &WeightStore,
    ) -> Result<Execution> {
        missing()
    }
}
