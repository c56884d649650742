//! Node classification: softmax cross-entropy over the labelled nodes of the training split,
//! accuracy on every split.

use super::{bad, find, pick_output, Gradients, Params, TrainOptions};
use crate::Error;
use pigeon_ir::Module;
use pigeon_runtime::graph::HeteroGraph;
use pigeon_runtime::loss;
use pigeon_runtime::tensor::Tensor;
use pigeon_runtime::weights::WeightStore;

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

/// A classifier being trained on one graph.
pub struct Trainer<'g> {
    graph: &'g HeteroGraph,
    grads: Gradients,
    /// The parameters being trained.
    pub params: Params,
    output: String,
    splits: [Vec<(u32, u32)>; 3],
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
            .ok_or_else(|| bad(format!("graph `{}` has no node labels to train on", graph.name)))?;
        if labels.multi_label {
            return Err(bad("multi-label node classification is not supported yet".into()));
        }
        let class_of = |nodes: &[u32]| -> Vec<(u32, u32)> {
            nodes
                .iter()
                .filter_map(|&n| labels.assignments.iter().find(|(m, _)| *m == n).copied())
                .collect()
        };
        let splits = [class_of(&labels.train), class_of(&labels.valid), class_of(&labels.test)];
        let (output, out_ty) = pick_output(&module, &opts.output, "logits")?;
        let classes = labels.class_names.len();
        if out_ty.domain != pigeon_ir::Domain::Node || out_ty.shape.dims() != [classes] {
            return Err(bad(format!(
                "output `{output}` is {out_ty}, but classifying into {classes} classes needs node [{classes}]"
            )));
        }
        let params = Params::new(&module, graph, opts, weights, Vec::new())?;
        let refs: Vec<&str> = params.learned_inputs().iter().map(String::as_str).collect();
        let grads = opts.engine(Gradients::new(&module, &refs)?, graph)?;
        Ok(Trainer { graph, grads, params, output, splits })
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
        let (g, p) = (self.graph, &self.params);
        let outs = self.grads.forward(g, p.inputs(), &p.weights)?;
        let logits = find(&outs.outputs, &self.output)?;
        let (loss, dlogits) = loss::cross_entropy(logits, &self.splits[0])?;
        let metrics = self.metrics(logits, loss)?;
        let seeds = vec![(self.output.clone(), dlogits)];
        let p = &mut self.params;
        let grads = self.grads.backward(g, &mut p.inputs, &p.weights, outs, seeds)?;
        self.params.update(&self.grads, &grads, &[])?;
        Ok(metrics)
    }

    /// Forward only with the current weights: the loss and the accuracy on each split.
    pub fn evaluate(&self) -> Result<Metrics, Error> {
        let p = &self.params;
        let outs = self.grads.forward(self.graph, p.inputs(), &p.weights)?;
        let logits = find(&outs.outputs, &self.output)?;
        let (loss, _) = loss::cross_entropy(logits, &self.splits[0])?;
        self.metrics(logits, loss)
    }
}
