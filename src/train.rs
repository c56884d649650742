//! Training a model on a graph: node classification with softmax cross-entropy, full batch.
//!
//! A [`Trainer`] differentiates the model once (`pigeon_passes::autodiff`), splits it into a
//! forward module that also returns the values the backward pass reads and a backward module,
//! and then runs each step as: forward, loss and its gradient on the host
//! ([`pigeon_runtime::loss`]), backward with that gradient as the seed, optimiser update
//! ([`pigeon_runtime::optim`]). Both modules run on the f64 reference interpreter; the derivative
//! operators have no kernel template yet, so the optimised back ends do not run training.
//!
//! Inputs the graph has no data for (featureless entities, as in AIFB and MUTAG) are *learned*:
//! their random initial values are trained like weights, which for a first linear layer is the
//! low-rank form of R-GCN's one-hot input.

use crate::Error;
use pigeon_ir::{GraphStats, Module};
use pigeon_passes::autodiff::{self, Differentiated, Saved, Split};
use pigeon_runtime::bind::{bind_inputs, BindingSource};
use pigeon_runtime::graph::HeteroGraph;
use pigeon_runtime::interp::interpret;
use pigeon_runtime::loss;
use pigeon_runtime::optim::{OptState, Optimizer};
use pigeon_runtime::tensor::Tensor;
use pigeon_runtime::weights::WeightStore;
use pigeon_runtime::RuntimeError;

/// A module differentiated once and split, run as forward then backward on the reference
/// interpreter.
pub struct Gradients {
    diff: Differentiated,
    split: Split,
}

impl Gradients {
    /// Differentiates `module` with respect to its weights and the inputs named in `inputs`.
    pub fn new(module: &Module, inputs: &[&str]) -> Result<Self, Error> {
        let diff = autodiff::differentiate(module, inputs)?;
        let split = autodiff::split(&diff)?;
        Ok(Gradients { diff, split })
    }

    /// The forward pass: the model's outputs, then the saved values.
    pub fn forward(
        &self,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
    ) -> Result<Vec<(String, Tensor)>, Error> {
        Ok(interpret(&self.split.forward, graph, inputs, weights)?)
    }

    /// The backward pass from the forward pass's results `forward` and one seed (the loss's
    /// gradient) per model output given in `seeds` (outputs left out get a zero seed): the
    /// gradient outputs (`grad:<weight>`, then `grad:input:<input>`).
    pub fn backward(
        &self,
        graph: &HeteroGraph,
        inputs: &[(String, Tensor)],
        weights: &WeightStore,
        forward: Vec<(String, Tensor)>,
        seeds: &[(String, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, Error> {
        let mut all = inputs.to_vec();
        for (out, t) in &forward {
            if let Some((_, seed)) = self.diff.seeds.iter().find(|(o, _)| o == out) {
                let value = match seeds.iter().find(|(n, _)| n == out) {
                    Some((_, s)) => s.clone(),
                    None => Tensor::zeros(t.rows, t.shape.clone()),
                };
                all.push((seed.clone(), value));
            }
        }
        all.extend(forward.into_iter().filter(|(n, _)| n.starts_with(autodiff::SAVED)));
        Ok(interpret(&self.split.backward, graph, &all, weights)?)
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
}

/// Losses and accuracies of one evaluation (accuracies `None` for an empty split).
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Mean cross-entropy over the training nodes.
    pub loss: f64,
    /// Accuracy on the training nodes.
    pub train_acc: Option<f64>,
    /// Accuracy on the validation nodes.
    pub valid_acc: Option<f64>,
    /// Accuracy on the test nodes.
    pub test_acc: Option<f64>,
}

/// A model being trained on one graph.
pub struct Trainer<'g> {
    graph: &'g HeteroGraph,
    module: Module,
    grads: Gradients,
    inputs: Vec<(String, Tensor)>,
    learned: Vec<String>,
    /// The current weights.
    pub weights: WeightStore,
    opt: OptState,
    output: String,
    splits: [Vec<(u32, u32)>; 3],
}

fn err(message: String) -> Error {
    Error::Runtime(RuntimeError::Binding { name: "labels".into(), message })
}

impl<'g> Trainer<'g> {
    /// Prepares training of `module` on `graph`: differentiates it, binds inputs, initialises
    /// (or takes) the weights and the optimiser. The graph must carry single-label node labels.
    pub fn new(
        module: Module,
        graph: &'g HeteroGraph,
        opts: &TrainOptions,
        weights: Option<WeightStore>,
    ) -> Result<Self, Error> {
        let labels = graph
            .labels
            .as_ref()
            .ok_or_else(|| err(format!("graph `{}` has no node labels to train on", graph.name)))?;
        if labels.multi_label {
            return Err(err("multi-label node classification is not supported yet".into()));
        }
        let class_of = |nodes: &[u32]| -> Vec<(u32, u32)> {
            nodes
                .iter()
                .filter_map(|&n| labels.assignments.iter().find(|(m, _)| *m == n).copied())
                .collect()
        };
        let splits = [class_of(&labels.train), class_of(&labels.valid), class_of(&labels.test)];
        let output = match &opts.output {
            Some(o) => o.clone(),
            None => match module.outputs.as_slice() {
                [(name, _)] => name.clone(),
                _ => {
                    return Err(err(
                        "the model has several outputs: say which holds the logits".into()
                    ))
                }
            },
        };
        let out_ty = module
            .outputs
            .iter()
            .find(|(n, _)| *n == output)
            .map(|(_, v)| module.ty(*v).clone())
            .ok_or_else(|| err(format!("the model has no output `{output}`")))?;
        let classes = labels.class_names.len();
        if out_ty.domain != pigeon_ir::Domain::Node || out_ty.shape.dims() != [classes] {
            return Err(err(format!(
                "output `{output}` is {out_ty}, but classifying into {classes} classes needs node [{classes}]"
            )));
        }
        let (inputs, notes) = bind_inputs(&module, graph, opts.seed)?;
        let learned: Vec<String> = notes
            .iter()
            .filter(|n| opts.learn_inputs && matches!(n.source, BindingSource::Random { .. }))
            .map(|n| n.name.clone())
            .collect();
        let refs: Vec<&str> = learned.iter().map(String::as_str).collect();
        let grads = Gradients::new(&module, &refs)?;
        let weights = match weights {
            Some(w) => w,
            None => {
                WeightStore::init(&module, graph.num_relations(), graph.num_node_types(), opts.seed)
            }
        };
        let mut sizes: Vec<usize> = weights.iter().map(|(_, e)| e.tensor.data.len()).collect();
        for name in &learned {
            sizes.extend(inputs.iter().filter(|(n, _)| n == name).map(|(_, t)| t.data.len()));
        }
        let opt = OptState::new(opts.optimizer, opts.lr, opts.weight_decay, &sizes);
        Ok(Trainer { graph, module, grads, inputs, learned, weights, opt, output, splits })
    }

    /// The inputs learned as embeddings (bound to random values because the graph has none).
    pub fn learned_inputs(&self) -> &[String] {
        &self.learned
    }

    /// The current values of the inputs (learned ones as trained so far).
    pub fn inputs(&self) -> &[(String, Tensor)] {
        &self.inputs
    }

    /// Replaces the values of learned inputs (from a checkpoint).
    pub fn set_inputs(&mut self, values: Vec<(String, Tensor)>) -> Result<(), Error> {
        for (name, t) in values {
            let slot = self.inputs.iter_mut().find(|(n, _)| *n == name).ok_or_else(|| {
                err(format!("the checkpoint holds input `{name}`, which the model does not have"))
            })?;
            if (slot.1.rows, &slot.1.shape) != (t.rows, &t.shape) {
                return Err(err(format!("checkpoint input `{name}` has the wrong shape")));
            }
            slot.1 = t;
        }
        Ok(())
    }

    /// The differentiated model.
    pub fn gradients(&self) -> &Gradients {
        &self.grads
    }

    fn metrics(&self, logits: &Tensor, loss: f64) -> Result<Metrics, Error> {
        let acc = |i: usize| loss::accuracy(logits, &self.splits[i]);
        Ok(Metrics { loss, train_acc: acc(0)?, valid_acc: acc(1)?, test_acc: acc(2)? })
    }

    /// One full-batch step: forward, loss, backward, update. The metrics are those of the
    /// weights before the update.
    pub fn step(&mut self) -> Result<Metrics, Error> {
        let g = self.graph;
        let outs = self.grads.forward(g, &self.inputs, &self.weights)?;
        let logits = &outs
            .iter()
            .find(|(n, _)| *n == self.output)
            .ok_or_else(|| err(format!("no output `{}`", self.output)))?
            .1;
        let (loss, dlogits) = loss::cross_entropy(logits, &self.splits[0])?;
        let metrics = self.metrics(logits, loss)?;
        let seeds = [(self.output.clone(), dlogits)];
        let grads = self.grads.backward(g, &self.inputs, &self.weights, outs, &seeds)?;
        self.apply(&grads)?;
        Ok(metrics)
    }

    /// Runs the optimiser on the gradient outputs of the backward module.
    fn apply(&mut self, grads: &[(String, Tensor)]) -> Result<(), Error> {
        let find = |name: &str| -> Result<&[f64], Error> {
            grads.iter().find(|(n, _)| n == name).map(|(_, t)| t.data.as_slice()).ok_or_else(|| {
                Error::Runtime(RuntimeError::Internal(format!("no gradient output `{name}`")))
            })
        };
        let mut gs: Vec<&[f64]> = Vec::new();
        for (_, name) in self.grads.weight_grads() {
            gs.push(find(name)?);
        }
        for input in &self.learned {
            let (_, name) =
                self.grads.input_grads().iter().find(|(i, _)| i == input).ok_or_else(|| {
                    Error::Runtime(RuntimeError::Internal(format!(
                        "no gradient for input `{input}`"
                    )))
                })?;
            gs.push(find(name)?);
        }
        let learned = &self.learned;
        let mut params: Vec<&mut [f64]> =
            self.weights.tensors_mut().into_iter().map(|t| t.data.as_mut_slice()).collect();
        for (name, t) in self.inputs.iter_mut() {
            if learned.contains(name) {
                params.push(t.data.as_mut_slice());
            }
        }
        self.opt.update(&mut params, &gs)?;
        Ok(())
    }

    /// Forward only with the current weights: the loss and the accuracy on each split.
    pub fn evaluate(&self) -> Result<Metrics, Error> {
        let outs = interpret(&self.module, self.graph, &self.inputs, &self.weights)?;
        let logits = &outs
            .iter()
            .find(|(n, _)| *n == self.output)
            .ok_or_else(|| err(format!("no output `{}`", self.output)))?
            .1;
        let (loss, _) = loss::cross_entropy(logits, &self.splits[0])?;
        self.metrics(logits, loss)
    }
}
