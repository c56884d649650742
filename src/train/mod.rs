//! Training a model on a graph: node classification with softmax cross-entropy, or sigmoid
//! binary cross-entropy for multi-label graphs ([`Trainer`], `classify.rs`), and
//! knowledge-graph link prediction with DistMult ([`LinkTrainer`], `link.rs`), full batch over
//! the graph.
//!
//! A [`Trainer`] differentiates the model once (`pigeon_passes::autodiff`), splits it into a
//! forward module that also returns the values the backward pass reads and a backward module,
//! and then runs each step as: forward, loss and its gradient on the host
//! ([`pigeon_runtime::loss`]), backward with that gradient as the seed, optimiser update
//! ([`pigeon_runtime::optim`]). Both modules run either on the f64 reference interpreter or,
//! after [`Gradients::compile`], as kernel plans optimised for the graph by the same pipeline as
//! inference (reordering, compaction, fusion, schedules) on a plan back end (the CPU back end
//! in f32 by default).
//!
//! Inputs the graph has no data for (featureless entities, as in AIFB and MUTAG) are *learned*:
//! their random initial values are trained like weights, which for a first linear layer is the
//! low-rank form of R-GCN's one-hot input.
//!
//! Inputs no step changes (node features, edge norms: [`Params::take_constant_inputs`]) are
//! pinned to the engine once ([`Gradients::pin`]): a plan back end that keeps inputs converts
//! them once and reads them in place in every forward and backward execution, and each step
//! passes only the inputs that change (learned ones, dropout masks).

mod classify;
mod link;

pub use classify::{Measure, Metrics, Trainer, ACCURACY, F1};
pub use link::{LinkOptions, LinkSplit, LinkTrainer};

use crate::Error;
use pigeon_ir::plan::Plan;
use pigeon_ir::{GraphStats, Module};
use pigeon_passes::autodiff::{self, Differentiated, Saved, Split};
use pigeon_passes::Options;
use pigeon_runtime::backend::{Backend, Inputs, Kept, Profile, Resident};
use pigeon_runtime::bind::{bind_inputs, BindingSource};
use pigeon_runtime::cpu::{CpuBackend, Precision};
use pigeon_runtime::graph::HeteroGraph;
use pigeon_runtime::interp::interpret;
use pigeon_runtime::optim::{OptState, Optimizer};
use pigeon_runtime::tensor::Tensor;
use pigeon_runtime::weights::WeightStore;
use pigeon_runtime::RuntimeError;
use std::sync::Mutex;

/// What runs the forward and backward modules.
enum Engine {
    /// The f64 reference interpreter.
    Reference,
    /// Kernel plans compiled for one graph, run by a plan back end.
    Plans { forward: Plan, backward: Plan, backend: Box<dyn Backend> },
}

/// Inputs pinned with [`Gradients::pin`].
#[derive(Default)]
enum Pinned {
    /// None.
    #[default]
    Nothing,
    /// Uploaded to the plan back end, which reads them in place.
    Resident(Resident),
    /// Kept here and appended to the inputs of every run (the reference interpreter, and plan
    /// back ends that keep no inputs).
    Host(Mutex<Vec<(String, Tensor)>>),
}

/// A module differentiated once and split, run as forward then backward.
pub struct Gradients {
    /// The forward module as given (compiling for a graph differentiates it again, after
    /// reordering it for that graph).
    module: Module,
    diff: Differentiated,
    split: Split,
    engine: Engine,
    pinned: Pinned,
    /// The profiles of the last forward and backward plan executions (for `pigeon bench`).
    profiles: Mutex<[Option<Profile>; 2]>,
}

impl Gradients {
    /// Differentiates `module` with respect to its weights and the inputs named in `inputs`;
    /// runs on the reference interpreter until [`Gradients::compile`].
    pub fn new(module: &Module, inputs: &[&str]) -> Result<Self, Error> {
        let diff = autodiff::differentiate(module, inputs)?;
        let split = autodiff::split(&diff)?;
        Ok(Gradients {
            module: module.clone(),
            diff,
            split,
            engine: Engine::Reference,
            pinned: Pinned::Nothing,
            profiles: Mutex::default(),
        })
    }

    /// Hands inputs that stay the same for every pass (node features, edge norms) to the
    /// engine once, so that [`Gradients::forward`] and [`Gradients::backward`] bind them
    /// without being given them: a plan back end that keeps inputs (`Backend::upload`, the
    /// CPU back end) converts them once and reads them in place in every execution; otherwise
    /// they are kept here and appended to the inputs of each run. Replaces what was pinned
    /// before (except on error); pinned inputs survive [`Gradients::compile`]. Errors: two
    /// values of one name ([`RuntimeError::Binding`]); values that do not fit a plan are
    /// reported when it runs, as are names both pinned and given to a pass.
    pub fn pin(&mut self, inputs: Vec<(String, Tensor)>) -> Result<(), Error> {
        if let Some(i) = (0..inputs.len()).find(|&i| inputs[..i].iter().any(|p| p.0 == inputs[i].0))
        {
            return Err(Error::Runtime(RuntimeError::Binding {
                name: inputs[i].0.clone(),
                message: "pinned twice".into(),
            }));
        }
        // The values pinned before are dropped before the new ones are uploaded.
        self.pinned = Pinned::Nothing;
        if inputs.is_empty() {
            return Ok(());
        }
        if let Engine::Plans { backend, .. } = &self.engine {
            if let Some(resident) = backend.upload(&inputs)? {
                self.pinned = Pinned::Resident(resident);
                return Ok(());
            }
        }
        self.pinned = Pinned::Host(Mutex::new(inputs));
        Ok(())
    }

    /// The names of the pinned inputs.
    pub fn pinned(&self) -> Vec<String> {
        match &self.pinned {
            Pinned::Nothing => Vec::new(),
            Pinned::Resident(r) => r.names().to_vec(),
            Pinned::Host(m) => {
                m.lock().map(|p| p.iter().map(|(n, _)| n.clone()).collect()).unwrap_or_default()
            }
        }
    }

    /// Compiles the forward and backward modules for `graph` with `options` and runs them on
    /// `backend` from now on. Saved edge values the optimised forward module computes on
    /// compact rows are saved as those rows (`autodiff::compile_split`), so the modules and
    /// the saved values change to the ones the plans implement.
    pub fn compile(
        mut self,
        graph: &HeteroGraph,
        options: &Options,
        backend: Box<dyn Backend>,
    ) -> Result<Self, Error> {
        let pinned = match std::mem::take(&mut self.pinned) {
            Pinned::Nothing => Vec::new(),
            Pinned::Host(m) => m.into_inner().map_err(|_| internal("pinned inputs".into()))?,
            Pinned::Resident(_) => {
                return Err(internal("compiling again after pinning inputs to a back end".into()))
            }
        };
        let stats = pigeon_runtime::layout::graph_stats(graph);
        let inputs: Vec<&str> = self.diff.input_grads.iter().map(|(i, _)| i.as_str()).collect();
        let (diff, compiled) = autodiff::compile_for_graph(&self.module, &inputs, &stats, options)?;
        self.diff = diff;
        self.split = compiled.split;
        let (forward, backward) = (compiled.forward, compiled.backward);
        self.engine = Engine::Plans { forward, backward, backend };
        self.pin(pinned)?;
        Ok(self)
    }

    /// The forward and backward plans, when compiled.
    pub fn plans(&self) -> Option<(&Plan, &Plan)> {
        match &self.engine {
            Engine::Reference => None,
            Engine::Plans { forward, backward, .. } => Some((forward, backward)),
        }
    }

    /// The profiles of the last forward and of the last backward execution, when they ran as
    /// plans.
    pub fn last_profiles(&self) -> [Option<Profile>; 2] {
        self.profiles.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// What runs the passes, for reports.
    pub fn engine_name(&self) -> String {
        match &self.engine {
            Engine::Reference => "reference interpreter (f64)".into(),
            Engine::Plans { backend, .. } => {
                format!("{} back end, optimised plans", backend.name())
            }
        }
    }

    /// Runs the forward module (`kept` is `None`) or the backward module, reading the saved
    /// values a forward plan left on the back end from `kept`. A forward plan keeps its saved
    /// values on the back end (in its element type, no round trip through f64). Pinned inputs
    /// kept here are appended to `inputs` for the run and taken back after it.
    fn run_pinned(
        &self,
        backward: bool,
        graph: &HeteroGraph,
        inputs: &mut Vec<(String, Tensor)>,
        weights: &WeightStore,
        kept: Option<Kept>,
    ) -> Result<Forward, Error> {
        let Pinned::Host(pinned) = &self.pinned else {
            return self.run(backward, graph, inputs, weights, kept);
        };
        let mut pinned = pinned.lock().map_err(|_| internal("pinned inputs".into()))?;
        if let Some((name, _)) = inputs.iter().find(|(n, _)| pinned.iter().any(|p| p.0 == *n)) {
            return Err(Error::Runtime(RuntimeError::Binding {
                name: name.clone(),
                message: "given both as a pinned input and as an input of this pass".into(),
            }));
        }
        let at = inputs.len();
        inputs.append(&mut pinned);
        let result = self.run(backward, graph, inputs, weights, kept);
        *pinned = inputs.split_off(at);
        result
    }

    /// Runs a module as [`Gradients::run_pinned`] says, with the pinned inputs only if they
    /// are resident on the plan back end.
    fn run(
        &self,
        backward: bool,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
        kept: Option<Kept>,
    ) -> Result<Forward, Error> {
        Ok(match &self.engine {
            Engine::Reference => {
                let m = if backward { &self.split.backward } else { &self.split.forward };
                Forward { outputs: interpret(m, graph, inputs, weights)?, kept: None }
            }
            Engine::Plans { forward, backward: bwd, backend } => {
                let plan = if backward { bwd } else { forward };
                let keep = |name: &str| !backward && name.starts_with(autodiff::SAVED);
                let resident = match &self.pinned {
                    Pinned::Resident(r) => Some(r),
                    _ => None,
                };
                let bound = Inputs { host: inputs, resident, kept };
                let (exec, kept) = backend.execute_kept(plan, graph, bound, weights, &keep)?;
                if let Ok(mut last) = self.profiles.lock() {
                    last[usize::from(backward)] = Some(exec.profile);
                }
                Forward { outputs: exec.outputs, kept }
            }
        })
    }

    /// The forward pass: the model's outputs, then the saved values (those a plan back end
    /// keeps are in [`Forward`] but not among its outputs). `inputs` are those not pinned
    /// ([`Gradients::pin`]); when pinned inputs are kept here rather than on a back end, the
    /// inputs given are copied for the run.
    pub fn forward(
        &self,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Forward, Error> {
        match &self.pinned {
            Pinned::Host(_) => self.run_pinned(false, graph, &mut inputs.to_vec(), weights, None),
            _ => self.run(false, graph, inputs, weights, None),
        }
    }

    /// The backward pass from the forward pass's results `forward` and one seed (the loss's
    /// gradient) per model output given in `seeds` (outputs left out get a zero seed): the
    /// gradient outputs (`grad:<weight>`, then `grad:input:<input>`). The seeds and saved values
    /// (and pinned inputs kept here) are appended to `inputs` for the run and removed again, so
    /// the inputs are not copied.
    pub fn backward(
        &self,
        graph: &HeteroGraph,
        inputs: &mut Vec<(String, Tensor)>,
        weights: &WeightStore,
        forward: Forward,
        mut seeds: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, Error> {
        let base = inputs.len();
        let Forward { outputs, kept } = forward;
        for (out, t) in &outputs {
            if let Some((_, seed)) = self.diff.seeds.iter().find(|(o, _)| o == out) {
                let value = match seeds.iter().position(|(n, _)| n == out) {
                    Some(i) => seeds.swap_remove(i).1,
                    None => Tensor::zeros(t.rows, t.shape.clone()),
                };
                inputs.push((seed.clone(), value));
            }
        }
        inputs.extend(outputs.into_iter().filter(|(n, _)| n.starts_with(autodiff::SAVED)));
        let result = self.run_pinned(true, graph, inputs, weights, kept);
        inputs.truncate(base);
        Ok(result?.outputs)
    }

    /// The name of the gradient output of each weight, in declaration order.
    pub fn weight_grads(&self) -> &[(pigeon_ir::WeightId, String)] {
        &self.diff.weight_grads
    }

    /// `(input, gradient output)` for each input differentiated by.
    pub fn input_grads(&self) -> &[(String, String)] {
        &self.diff.input_grads
    }

    /// The forward and backward modules.
    pub fn modules(&self) -> (&Module, &Module) {
        (&self.split.forward, &self.split.backward)
    }

    /// The values the backward pass reads from the forward pass, with their f32 bytes.
    pub fn saved(&self, stats: &GraphStats) -> Vec<(Saved, usize)> {
        self.split.saved.iter().map(|s| (s.clone(), s.bytes(stats))).collect()
    }
}

/// The results of a forward pass: the model's outputs and the saved values the backward pass
/// reads, some of which may stay on the back end that computed them.
#[derive(Debug)]
pub struct Forward {
    /// The outputs returned to the host, by name.
    pub outputs: Vec<(String, Tensor)>,
    /// Saved values left on the plan back end.
    kept: Option<Kept>,
}

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Learning rate.
    pub lr: f64,
    /// L2 weight decay (added to the gradient, as PyTorch's optimisers do).
    pub weight_decay: f64,
    /// The update rule.
    pub optimizer: Optimizer,
    /// Seed of weight initialisation and of the random values of learned inputs.
    pub seed: u64,
    /// The output holding the class logits (default: the model's only output).
    pub output: Option<String>,
    /// Whether inputs the graph has no data for are trained (as embeddings) or stay the fixed
    /// random features they are bound to.
    pub learn_inputs: bool,
    /// Where forward and backward run: `Some`: as plans compiled for the graph with these
    /// optimisation switches, on the CPU back end in this precision; `None`: on the f64
    /// reference interpreter.
    pub plans: Option<(Options, Precision)>,
    /// Whether the inputs no step changes are pinned to the engine once
    /// ([`Gradients::pin`]) rather than passed, and on a plan back end converted, in every
    /// pass. The results are the same either way.
    pub pin_inputs: bool,
}

impl TrainOptions {
    /// `grads` compiled for `graph` as these options say.
    pub fn engine(&self, grads: Gradients, graph: &HeteroGraph) -> Result<Gradients, Error> {
        match &self.plans {
            None => Ok(grads),
            Some((options, precision)) => {
                grads.compile(graph, options, Box::new(CpuBackend::new(*precision)))
            }
        }
    }
}

/// What training updates: the weights, the learned tables and the inputs learned as
/// embeddings, and parameters the host-side loss owns (DistMult's relation vectors), with the
/// optimiser's state.
pub struct Params {
    /// The current weights.
    pub weights: WeightStore,
    inputs: Vec<(String, Tensor)>,
    /// The inputs training updates (the model's learned tables and data inputs learned as
    /// embeddings), in declaration order.
    learned: Vec<String>,
    /// Which of `learned` are tables.
    tables: Vec<String>,
    /// The dropout masks (input names) and their drop probabilities.
    dropout: Vec<(String, f64)>,
    /// Training steps taken with fresh dropout masks (each step's masks come from its own
    /// stream of the seed).
    dropout_steps: u64,
    seed: u64,
    /// Host-side parameters, by name.
    pub extra: Vec<(String, Tensor)>,
    opt: OptState,
}

impl Params {
    /// Binds the inputs of `module` on `graph` (learning its tables, and those the graph has
    /// no data for when `opts.learn_inputs`), takes or initialises the weights, and sizes the
    /// optimiser.
    pub fn new(
        module: &Module,
        graph: &HeteroGraph,
        opts: &TrainOptions,
        weights: Option<WeightStore>,
        extra: Vec<(String, Tensor)>,
    ) -> Result<Self, Error> {
        let (inputs, notes) = bind_inputs(module, graph, opts.seed)?;
        let of = |pick: &dyn Fn(&BindingSource) -> bool| {
            notes.iter().filter(|n| pick(&n.source)).map(|n| n.name.clone()).collect::<Vec<_>>()
        };
        let tables = of(&|s| matches!(s, BindingSource::Learned { .. }));
        let dropout = notes
            .iter()
            .filter_map(|n| match n.source {
                BindingSource::DropoutMask { p } => Some((n.name.clone(), p)),
                _ => None,
            })
            .collect();
        let learned = of(&|s| match s {
            BindingSource::Learned { .. } => true,
            BindingSource::Random { .. } => opts.learn_inputs,
            _ => false,
        });
        let weights = match weights {
            Some(w) => w,
            None => {
                WeightStore::init(module, graph.num_relations(), graph.num_node_types(), opts.seed)
            }
        };
        let mut sizes: Vec<usize> = weights.iter().map(|(_, e)| e.tensor.data.len()).collect();
        for name in &learned {
            sizes.extend(inputs.iter().filter(|(n, _)| n == name).map(|(_, t)| t.data.len()));
        }
        sizes.extend(extra.iter().map(|(_, t)| t.data.len()));
        let opt = OptState::new(opts.optimizer, opts.lr, opts.weight_decay, &sizes);
        Ok(Params {
            weights,
            inputs,
            learned,
            tables,
            dropout,
            dropout_steps: 0,
            seed: opts.seed,
            extra,
            opt,
        })
    }

    /// Whether the model has dropout.
    pub fn has_dropout(&self) -> bool {
        !self.dropout.is_empty()
    }

    /// Draws fresh dropout masks for a training step (`train`), or sets them to ones for
    /// evaluation. Each element of a mask of probability `p` is 0 with probability `p` and
    /// `1 / (1 - p)` otherwise, from `Rng::for_stream(seed, "dropout:<step>:<name>")`.
    pub fn set_dropout(&mut self, train: bool) {
        if train {
            self.dropout_steps += 1;
        }
        for (name, p) in &self.dropout {
            let Some((_, t)) = self.inputs.iter_mut().find(|(n, _)| n == name) else { continue };
            if !train {
                t.data.iter_mut().for_each(|x| *x = 1.0);
                continue;
            }
            let stream = format!("dropout:{}:{name}", self.dropout_steps);
            let mut rng = pigeon_runtime::rng::Rng::for_stream(self.seed, &stream);
            let keep = 1.0 / (1.0 - p);
            t.data.iter_mut().for_each(|x| *x = if rng.next_f64() < *p { 0.0 } else { keep });
        }
    }

    /// Whether no training step changes input `name`: it is neither learned nor a dropout mask.
    fn is_constant(&self, name: &str) -> bool {
        !self.learned.iter().any(|n| n == name) && !self.dropout.iter().any(|(n, _)| n == name)
    }

    /// The inputs held here that no training step changes (graph features, edge norms, fixed
    /// random inputs): neither learned nor dropout masks.
    pub fn constant_inputs(&self) -> Vec<String> {
        self.inputs.iter().map(|(n, _)| n.clone()).filter(|n| self.is_constant(n)).collect()
    }

    /// Moves the inputs no training step changes out (to be pinned, [`Gradients::pin`]):
    /// [`Params::inputs`] then holds only the learned inputs and the dropout masks.
    pub fn take_constant_inputs(&mut self) -> Vec<(String, Tensor)> {
        let (constant, changing) =
            std::mem::take(&mut self.inputs).into_iter().partition(|(n, _)| self.is_constant(n));
        self.inputs = changing;
        constant
    }

    /// The inputs training updates: the learned tables and the inputs learned as embeddings.
    pub fn learned_inputs(&self) -> &[String] {
        &self.learned
    }

    /// The data inputs learned as embeddings (the learned inputs that are not tables).
    pub fn embeddings(&self) -> impl Iterator<Item = &String> {
        self.learned.iter().filter(|n| !self.tables.contains(n))
    }

    /// The current values of the inputs held here (learned ones as trained so far): all of
    /// them, or after [`Params::take_constant_inputs`] those that steps change.
    pub fn inputs(&self) -> &[(String, Tensor)] {
        &self.inputs
    }

    /// Multiplies the initial values of the inputs learned as embeddings (not the tables,
    /// which have their declared initialisation) by `factor`.
    pub fn scale_learned(&mut self, factor: f64) {
        for (name, t) in self.inputs.iter_mut() {
            if self.learned.contains(name) && !self.tables.contains(name) {
                t.data.iter_mut().for_each(|x| *x *= factor);
            }
        }
    }

    /// Replaces the values of host-side parameters (from a checkpoint), by name.
    pub fn set_extra(&mut self, values: Vec<(String, Tensor)>) -> Result<(), Error> {
        replace_named(&mut self.extra, values, "parameter")
    }

    /// Replaces the values of learned inputs (from a checkpoint).
    pub fn set_inputs(&mut self, values: Vec<(String, Tensor)>) -> Result<(), Error> {
        replace_named(&mut self.inputs, values, "input")
    }

    /// One optimiser step from the backward module's gradient outputs `grads` (of `g`) and
    /// the gradients of the host-side parameters, in order.
    pub fn update(
        &mut self,
        g: &Gradients,
        grads: &[(String, Tensor)],
        extra: &[&[f64]],
    ) -> Result<(), Error> {
        let internal = |m: String| Error::Runtime(RuntimeError::Internal(m));
        let find = |name: &str| -> Result<&[f64], Error> {
            grads
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.data.as_slice())
                .ok_or_else(|| internal(format!("no gradient output `{name}`")))
        };
        let mut gs: Vec<&[f64]> = Vec::new();
        for (_, name) in g.weight_grads() {
            gs.push(find(name)?);
        }
        for input in &self.learned {
            let (_, name) = g
                .input_grads()
                .iter()
                .find(|(i, _)| i == input)
                .ok_or_else(|| internal(format!("no gradient for input `{input}`")))?;
            gs.push(find(name)?);
        }
        gs.extend_from_slice(extra);
        let learned = &self.learned;
        let mut params: Vec<&mut [f64]> =
            self.weights.tensors_mut().into_iter().map(|t| t.data.as_mut_slice()).collect();
        for (name, t) in self.inputs.iter_mut() {
            if learned.contains(name) {
                params.push(t.data.as_mut_slice());
            }
        }
        params.extend(self.extra.iter_mut().map(|(_, t)| t.data.as_mut_slice()));
        self.opt.update(&mut params, &gs)?;
        Ok(())
    }
}

/// Replaces the tensors of `slots` named in `values` (a checkpoint's `what`s), which must
/// exist and keep their shapes.
fn replace_named(
    slots: &mut [(String, Tensor)],
    values: Vec<(String, Tensor)>,
    what: &str,
) -> Result<(), Error> {
    for (name, t) in values {
        let slot = slots.iter_mut().find(|(n, _)| *n == name).ok_or_else(|| {
            bad(format!("the checkpoint holds {what} `{name}`, which the model does not have"))
        })?;
        if (slot.1.rows, &slot.1.shape) != (t.rows, &t.shape) {
            return Err(bad(format!("checkpoint {what} `{name}` has the wrong shape")));
        }
        slot.1 = t;
    }
    Ok(())
}

/// An internal error (a bug, not bad data).
fn internal(message: String) -> Error {
    Error::Runtime(RuntimeError::Internal(message))
}

/// A binding error about training data (labels, outputs, checkpoints).
pub(crate) fn bad(message: String) -> Error {
    Error::Runtime(RuntimeError::Binding { name: "training".into(), message })
}

/// The output named `output`, or the model's only output.
pub(crate) fn pick_output(
    module: &Module,
    output: &Option<String>,
    what: &str,
) -> Result<(String, pigeon_ir::Type), Error> {
    let name = match output {
        Some(o) => o.clone(),
        None => match module.outputs.as_slice() {
            [(name, _)] => name.clone(),
            _ => {
                return Err(bad(format!(
                    "the model has several outputs: say which holds the {what}"
                )))
            }
        },
    };
    let ty = module
        .outputs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| module.ty(*v).clone())
        .ok_or_else(|| bad(format!("the model has no output `{name}`")))?;
    Ok((name, ty))
}

/// The tensor named `name` among `outs`.
pub(crate) fn find<'a>(outs: &'a [(String, Tensor)], name: &str) -> Result<&'a Tensor, Error> {
    outs.iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| bad(format!("no output `{name}`")))
}
