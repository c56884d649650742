//! The initial values of input and weight storages, as `f32`, checked against the plan's
//! declarations by the rules shared with the CPU back end (`values.rs`).

use super::host::{Fill, Prepared};
use crate::error::{Result, RuntimeError};
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use pigeon_ir::plan::{Plan, RowSpace};
use pigeon_ir::{EntityId, Shape};

/// For each storage of `prep`, its initial values (`None`: zeros).
pub(crate) fn storage_values(
    plan: &Plan,
    prep: &Prepared,
    inputs: &[(String, Tensor)],
    weights: &WeightStore,
) -> Result<Vec<Option<Vec<f32>>>> {
    let mut out = vec![None; prep.storages.len()];
    for (id, buf) in plan.buffers.iter() {
        let st = prep.of_buffer[id.index()];
        let rows = prep.count(buf.rows)?;
        let values = match &prep.storages[st].fill {
            Fill::Input(name) => input(name, buf.rows, rows, &buf.shape, inputs)?,
            Fill::Weight(w) => {
                let decl = plan
                    .weights
                    .get(*w)
                    .ok_or_else(|| RuntimeError::Internal(format!("undeclared weight {w}")))?;
                weight(&decl.name, weights.get(*w), rows, &buf.shape)?
            }
            Fill::Zero => continue,
        };
        out[st] = Some(values);
    }
    Ok(out)
}

/// The bound value of input `name`, checked and rounded to f32.
fn input(
    name: &str,
    space: RowSpace,
    rows: usize,
    shape: &Shape,
    inputs: &[(String, Tensor)],
) -> Result<Vec<f32>> {
    Ok(crate::values::bound_input(name, space, rows, shape, inputs)?.to_f32())
}

/// The values of the weight named `name`, checked against its declaration and the graph.
fn weight(name: &str, t: Option<&Tensor>, rows: usize, shape: &Shape) -> Result<Vec<f32>> {
    Ok(crate::values::weight_values(name, t, rows, shape)?.to_f32())
}
