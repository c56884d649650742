//! Opening a GPU: the driver library is probed first (cudarc panics without it), then the
//! device is counted, its primary context retained, and its name, architecture and memory read.

use super::{libs, DeviceInfo};
use crate::error::{Result, RuntimeError};
use cudarc::driver::{CudaContext, DriverError};
use std::sync::Arc;

/// A [`RuntimeError::Cuda`] naming the call that failed.
pub(crate) fn cuda_err(call: &str) -> impl Fn(DriverError) -> RuntimeError + '_ {
    move |e| RuntimeError::Cuda(format!("{call} failed: {e:?}"))
}

/// Finds GPU `ordinal` without panicking: [`RuntimeError::NoDevice`] when the driver library is
/// missing, no device exists, or `ordinal` is out of range.
pub fn probe(ordinal: usize) -> Result<DeviceInfo> {
    open(ordinal).map(|(_, info)| info)
}

/// The context of GPU `ordinal` and what it is.
pub(crate) fn open(ordinal: usize) -> Result<(Arc<CudaContext>, DeviceInfo)> {
    libs::check_driver()?;
    let count = CudaContext::device_count().map_err(|e| {
        RuntimeError::NoDevice(format!("the CUDA driver found no usable GPU ({e:?})"))
    })?;
    let count = usize::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(RuntimeError::NoDevice("the CUDA driver reports no GPU".into()));
    }
    if ordinal >= count {
        return Err(RuntimeError::NoDevice(format!(
            "GPU {ordinal} does not exist ({count} found, numbered from 0)"
        )));
    }
    let ctx = CudaContext::new(ordinal).map_err(cuda_err("creating a context (cuCtx)"))?;
    let name = ctx.name().map_err(cuda_err("cuDeviceGetName"))?;
    let (major, minor) = ctx.compute_capability().map_err(cuda_err("cuDeviceGetAttribute"))?;
    let (free_bytes, total_bytes) = ctx.mem_get_info().map_err(cuda_err("cuMemGetInfo"))?;
    let info =
        DeviceInfo { ordinal, name, arch: format!("sm_{major}{minor}"), total_bytes, free_bytes };
    Ok((ctx, info))
}
