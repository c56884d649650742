//! The checks every plan executor applies to the values it is given: an input bound by name
//! must have the rows and per-row shape the plan declares on this graph, a weight the slices and
//! shape of its declaration. Shared by the CPU and CUDA back ends so their messages agree.

use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use pigeon_ir::plan::RowSpace;
use pigeon_ir::Shape;

/// The value bound to input `name`, checked to hold `rows` rows of `shape`.
pub(crate) fn bound_input<'a>(
    name: &str,
    space: RowSpace,
    rows: usize,
    shape: &Shape,
    inputs: &'a [(String, Tensor)],
) -> Result<&'a Tensor> {
    let err = |message: String| RuntimeError::Binding { name: name.to_string(), message };
    let t = inputs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| err(format!("no value given (declared per {space:?} {shape})")))?;
    if t.rows != rows || t.shape != *shape || t.data.len() != rows * shape.numel() {
        return Err(err(format!(
            "needs {rows} rows of shape {shape} on this graph, got {} rows of shape {} ({} values)",
            t.rows,
            t.shape,
            t.data.len()
        )));
    }
    Ok(t)
}

/// The values of the weight named `name`, checked to hold `rows` slices of `shape`.
pub(crate) fn weight_values<'a>(
    name: &str,
    t: Option<&'a Tensor>,
    rows: usize,
    shape: &Shape,
) -> Result<&'a Tensor> {
    let t = t.ok_or_else(|| RuntimeError::Weights(format!("no values for weight `{name}`")))?;
    if t.rows != rows || t.shape != *shape || t.data.len() != rows * shape.numel() {
        return Err(RuntimeError::Weights(format!(
            "weight `{name}` needs {rows} slices of shape {shape}, but holds {} slices of shape {}",
            t.rows, t.shape
        )));
    }
    Ok(t)
}
