//! Node classification: single-label (softmax cross-entropy over the labelled nodes of the
//! training split, accuracy on every split) and multi-label (sigmoid binary cross-entropy,
//! micro- and macro-F1 on every split).

use super::{bad, find, pick_output, Gradients, Params, TrainOptions};
use crate::Error;
use pigeon_ir::Module;
use pigeon_runtime::graph::{HeteroGraph, Labels};
use pigeon_runtime::loss;
use pigeon_runtime::tensor::Tensor;
use pigeon_runtime::weights::WeightStore;
use std::collections::BTreeMap;

/// A measure of the predictions on one split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measure {
    /// Short name, for metric columns (`train_<key>`).
    pub key: &'static str,
    /// Name in reports.
    pub name: &'static str,
}

/// The measure of single-label classification.
pub const ACCURACY: &[Measure] = &[Measure { key: "acc", name: "accuracy" }];

/// The measures of multi-label classification, as HGB reports them.
pub const F1: &[Measure] =
    &[Measure { key: "micro_f1", name: "micro-F1" }, Measure { key: "macro_f1", name: "macro-F1" }];

/// The loss and the measures on each split of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// The mean loss over the training nodes (cross-entropy, or binary cross-entropy for
    /// multi-label graphs).
    pub loss: f64,
    /// Per split (train, valid, test): the value of each of the trainer's measures
    /// ([`Trainer::measures`]) in order, `None` for an empty split.
    pub splits: [Option<Vec<f64>>; 3],
}

impl Metrics {
    /// The first measure (accuracy, micro-F1) on split `split` (0 train, 1 valid, 2 test):
    /// what model selection and summaries use.
    pub fn primary(&self, split: usize) -> Option<f64> {
        self.splits[split].as_ref().and_then(|v| v.first().copied())
    }
}

/// The labelled nodes of the train, valid and test splits, as their loss takes them.
enum Splits {
    /// One class per node.
    Single([Vec<(u32, u32)>; 3]),
    /// A set of classes per node.
    Multi([Vec<(u32, Vec<u32>)>; 3]),
}

impl Splits {
    /// The splits of `labels`. A single-label node of a split with no class is left out; a
    /// multi-label one is in no class.
    fn new(labels: &Labels) -> Self {
        let mut classes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(node, class) in &labels.assignments {
            classes.entry(node).or_default().push(class);
        }
        let sets = |nodes: &[u32]| -> Vec<(u32, Vec<u32>)> {
            nodes.iter().map(|&n| (n, classes.get(&n).cloned().unwrap_or_default())).collect()
        };
        let [train, valid, test] = [&labels.train, &labels.valid, &labels.test].map(|s| sets(s));
        if labels.multi_label {
            return Splits::Multi([train, valid, test]);
        }
        let first = |s: Vec<(u32, Vec<u32>)>| -> Vec<(u32, u32)> {
            s.into_iter().filter_map(|(n, c)| c.first().map(|&c| (n, c))).collect()
        };
        Splits::Single([first(train), first(valid), first(test)])
    }

    fn measures(&self) -> &'static [Measure] {
        match self {
            Splits::Single(_) => ACCURACY,
            Splits::Multi(_) => F1,
        }
    }

    /// The mean loss over the training split and its gradient.
    fn loss(&self, logits: &Tensor) -> Result<(f64, Tensor), Error> {
        Ok(match self {
            Splits::Single(s) => loss::cross_entropy(logits, &s[0])?,
            Splits::Multi(s) => loss::binary_cross_entropy(logits, &s[0])?,
        })
    }

    /// The measures on split `i`, `None` when it is empty.
    fn score(&self, logits: &Tensor, i: usize) -> Result<Option<Vec<f64>>, Error> {
        Ok(match self {
            Splits::Single(s) => loss::accuracy(logits, &s[i])?.map(|a| vec![a]),
            Splits::Multi(s) => loss::f1(logits, &s[i])?.map(|f| vec![f.micro, f.macro_]),
        })
    }
}

/// A classifier being trained on one graph.
pub struct Trainer<'g> {
    graph: &'g HeteroGraph,
    grads: Gradients,
    /// The parameters being trained.
    pub params: Params,
    output: String,
    splits: Splits,
}

impl<'g> Trainer<'g> {
    /// Prepares training of `module` on `graph`: differentiates it, binds inputs, initialises
    /// (or takes) the weights and the optimiser. The graph must carry node labels, single- or
    /// multi-label.
    pub fn new(
        module: Module,
        graph: &'g HeteroGraph,
        opts: &TrainOptions,
        weights: Option<WeightStore>,
    ) -> Result<Self, Error> {
        let labels = graph
            .labels
            .as_ref()
            .ok_or_else(|| bad(format!("graph `{}` has no node labels to train on", graph.name)))?;
        let splits = Splits::new(labels);
        let (output, out_ty) = pick_output(&module, &opts.output, "logits")?;
        let classes = labels.class_names.len();
        if out_ty.domain != pigeon_ir::Domain::Node || out_ty.shape.dims() != [classes] {
            return Err(bad(format!(
                "output `{output}` is {out_ty}, but classifying into {classes} classes needs node [{classes}]"
            )));
        }
        let mut params = Params::new(&module, graph, opts, weights, Vec::new())?;
        let refs: Vec<&str> = params.learned_inputs().iter().map(String::as_str).collect();
        let mut grads = opts.engine(Gradients::new(&module, &refs)?, graph)?;
        if opts.pin_inputs {
            grads.pin(params.take_constant_inputs())?;
        }
        Ok(Trainer { graph, grads, params, output, splits })
    }

    /// The differentiated model.
    pub fn gradients(&self) -> &Gradients {
        &self.grads
    }

    /// What [`Metrics`] measures on each split: accuracy for single-label graphs, micro- and
    /// macro-F1 for multi-label ones.
    pub fn measures(&self) -> &'static [Measure] {
        self.splits.measures()
    }

    fn metrics(&self, logits: &Tensor, loss: f64) -> Result<Metrics, Error> {
        let score = |i: usize| self.splits.score(logits, i);
        Ok(Metrics { loss, splits: [score(0)?, score(1)?, score(2)?] })
    }

    /// One full-batch step: forward, loss, backward, update. The metrics are those of the
    /// weights before the update; with dropout, the loss is the training forward's (with fresh
    /// masks) and the accuracies those of a forward without dropout.
    pub fn step(&mut self) -> Result<Metrics, Error> {
        let before = if self.params.has_dropout() { Some(self.evaluate()?) } else { None };
        self.params.set_dropout(true);
        let (g, p) = (self.graph, &self.params);
        let outs = self.grads.forward(g, p.inputs(), &p.weights)?;
        let logits = find(&outs.outputs, &self.output)?;
        let (loss, dlogits) = self.splits.loss(logits)?;
        let metrics = match before {
            Some(m) => Metrics { loss, ..m },
            None => self.metrics(logits, loss)?,
        };
        let seeds = vec![(self.output.clone(), dlogits)];
        let p = &mut self.params;
        let grads = self.grads.backward(g, &mut p.inputs, &p.weights, outs, seeds)?;
        self.params.update(&self.grads, &grads, &[])?;
        self.params.set_dropout(false);
        Ok(metrics)
    }

    /// Forward only with the current weights: the loss and the measures on each split.
    pub fn evaluate(&self) -> Result<Metrics, Error> {
        let p = &self.params;
        let outs = self.grads.forward(self.graph, p.inputs(), &p.weights)?;
        let logits = find(&outs.outputs, &self.output)?;
        let (loss, _) = self.splits.loss(logits)?;
        self.metrics(logits, loss)
    }
}
