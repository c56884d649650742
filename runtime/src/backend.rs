//! The interface every plan executor implements (CPU now, CUDA later), so that tests and the
//! CLI are written once and run on each back end that is present.

use crate::error::Result;
use crate::graph::HeteroGraph;
use crate::tensor::Tensor;
use crate::weights::WeightStore;
use pigeon_ir::plan::{KernelId, Plan};
use std::time::Duration;

/// Where the time and memory of one execution went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Wall-clock time of each kernel, in execution order.
    pub per_kernel: Vec<(KernelId, Duration)>,
    /// Time spent building graph layouts.
    pub layouts: Duration,
    /// The most bytes of buffer memory (inputs, weights, temps by slot, outputs) held at once
    /// on the executing device.
    pub peak_bytes: usize,
}

impl Profile {
    /// The total kernel time.
    pub fn kernels_total(&self) -> Duration {
        self.per_kernel.iter().map(|(_, d)| *d).sum()
    }
}

/// The result of executing a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    /// The plan's outputs, by name, in the plan's order (values widened to f64).
    pub outputs: Vec<(String, Tensor)>,
    /// Timings and memory.
    pub profile: Profile,
}

/// Outputs one execution left on its back end, in the back end's own element type and memory,
/// for a later execution on the same back end to read as inputs of the same names: a training
/// step's saved values, which then skip the round trip through f64 host tensors.
pub struct Kept(pub(crate) Box<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept(..)")
    }
}

/// A plan executor.
pub trait Backend {
    /// A short name for messages and reports (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// Runs `plan` on `graph` with inputs bound by name and the module's weights. Errors:
    /// inputs of the wrong shape are [`crate::RuntimeError::Binding`], weights that do not fit
    /// are [`crate::RuntimeError::Weights`], graphs with out-of-range ids are
    /// [`crate::RuntimeError::InvalidGraph`], inconsistent plans are
    /// [`crate::RuntimeError::Internal`].
    fn execute(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Execution>;

    /// As [`Backend::execute`], except that the outputs whose names `keep` accepts are left on
    /// the back end, in the returned [`Kept`], instead of being widened to f64 and returned,
    /// and that inputs are read from `kept` (left by an earlier execution on this back end)
    /// before `inputs`. The default keeps nothing: every output is returned.
    fn execute_kept(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
        kept: Option<Kept>,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Execution, Option<Kept>)> {
        let _ = (kept, keep);
        Ok((self.execute(plan, graph, inputs, weights)?, None))
    }
}
