//! The checks every plan executor applies to the values it is given: an input bound by name
//! must have the rows and per-row shape the plan declares on this graph (whether given as a
//! host tensor or uploaded to the back end before), a weight the slices and shape of its
//! declaration. Shared by the CPU and CUDA back ends so their messages agree.

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
    let t = inputs.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| {
        RuntimeError::Binding {
            name: name.to_string(),
            message: format!("no value given (declared per {space:?} {shape})"),
        }
    })?;
    check_input(name, rows, shape, (t.rows, &t.shape, t.data.len()))?;
    Ok(t)
}

/// Checks that the value of input `name`, `(rows, per-row shape, number of values)` as
/// given (a host tensor, or a value uploaded to the back end), holds the `rows` rows of
/// `shape` the plan declares on this graph.
pub(crate) fn check_input(
    name: &str,
    rows: usize,
    shape: &Shape,
    (got_rows, got_shape, got_len): (usize, &Shape, usize),
) -> Result<()> {
    if got_rows != rows || got_shape != shape || got_len != rows * shape.numel() {
        return Err(RuntimeError::Binding {
            name: name.to_string(),
            message: format!(
                "needs {rows} rows of shape {shape} on this graph, got {got_rows} rows of shape \
                 {got_shape} ({got_len} values)"
            ),
        });
    }
    Ok(())
}

/// Checks inputs handed to a back end to be kept there (`Backend::upload`): names are unique
/// and every tensor's values fill its rows.
pub(crate) fn check_upload(inputs: &[(String, Tensor)]) -> Result<()> {
    for (i, (name, t)) in inputs.iter().enumerate() {
        let err = |message: String| RuntimeError::Binding { name: name.clone(), message };
        if inputs[..i].iter().any(|(n, _)| n == name) {
            return Err(err("given twice to be kept on the back end".into()));
        }
        if t.data.len() != t.rows * t.shape.numel() {
            return Err(err(format!(
                "holds {} values, not {} rows of shape {}",
                t.data.len(),
                t.rows,
                t.shape
            )));
        }
    }
    Ok(())
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
