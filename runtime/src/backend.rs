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
    /// on the executing device (resident inputs included).
    pub peak_bytes: usize,
    /// Host time outside kernels spent moving values between the caller's f64 tensors and the
    /// back end: binding inputs and weights (checks, conversion to the element type, uploads,
    /// taking buffers from the pool) and widening or downloading the returned outputs.
    pub transfers: Duration,
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

/// Inputs handed to a back end once ([`Backend::upload`]), held in its own element type and
/// memory, for every later execution on that back end to read in place: a training loop's
/// constant inputs (node features, edge norms), which are then neither converted nor copied
/// per execution. Not tied to a plan: each execution checks the values it reads against its
/// plan's declarations, as it checks ordinary inputs.
pub struct Resident {
    names: Vec<String>,
    pub(crate) values: Box<dyn std::any::Any + Send + Sync>,
}

impl Resident {
    /// Resident values named `names`, held by the back end as `values`.
    pub(crate) fn new(names: Vec<String>, values: Box<dyn std::any::Any + Send + Sync>) -> Self {
        Self { names, values }
    }

    /// The names of the values held, in upload order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resident({:?})", self.names)
    }
}

/// Where the inputs of one execution come from. An input is bound from `kept` first, then
/// from `resident`, then from `host`; a name both resident and in `host` is a
/// [`crate::RuntimeError::Binding`] error (never silently one of the two).
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// Host tensors, by name.
    pub host: &'a [(String, Tensor)],
    /// Values uploaded once with [`Backend::upload`] to the executing back end.
    pub resident: Option<&'a Resident>,
    /// Outputs an earlier execution on the executing back end left there (moved in: read once).
    pub kept: Option<Kept>,
}

impl<'a> Inputs<'a> {
    /// Host tensors only.
    pub fn host(host: &'a [(String, Tensor)]) -> Self {
        Self { host, resident: None, kept: None }
    }

    /// Checks that no name is both resident and among the host tensors.
    pub fn check_disjoint(&self) -> Result<()> {
        let Some(resident) = self.resident else { return Ok(()) };
        match self.host.iter().find(|(n, _)| resident.names.contains(n)) {
            None => Ok(()),
            Some((name, _)) => Err(crate::RuntimeError::Binding {
                name: name.clone(),
                message: "given both as a resident value and as an input of this execution".into(),
            }),
        }
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
    /// and that inputs are bound as [`Inputs`] says: from values kept by an earlier execution
    /// on this back end, then from values uploaded to it, then from host tensors. The default
    /// keeps nothing (every output is returned) and holds no resident values: it refuses
    /// [`Inputs::resident`], which only a back end whose [`Backend::upload`] made them can read.
    fn execute_kept(
        &self,
        plan: &Plan,
        graph: &HeteroGraph,
        inputs: Inputs<'_>,
        weights: &WeightStore,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Execution, Option<Kept>)> {
        let _ = keep;
        if inputs.resident.is_some() {
            return Err(crate::RuntimeError::Internal(format!(
                "the {} back end holds no resident values",
                self.name()
            )));
        }
        Ok((self.execute(plan, graph, inputs.host, weights)?, None))
    }

    /// Hands `inputs` to the back end once, converted to its element type and held in its
    /// memory, for later executions to read through [`Inputs::resident`] without converting
    /// or copying them. Inputs are not tied to a plan; each execution checks those it reads
    /// against its plan. `Ok(None)`: the back end keeps no inputs (the default), and the
    /// caller passes them as host tensors every time. Errors: two values of one name, or a
    /// tensor whose values do not fill its rows, are [`crate::RuntimeError::Binding`].
    fn upload(&self, inputs: &[(String, Tensor)]) -> Result<Option<Resident>> {
        let _ = inputs;
        Ok(None)
    }
}
