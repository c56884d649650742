//! Link prediction on a knowledge graph (`triples:` graphs with train/valid/test triples): the
//! model is the encoder (node embeddings out), DistMult the decoder, with its relation vectors
//! trained on the host beside the model's weights (`pigeon_runtime::linkpred`).
//!
//! Each step runs the encoder on the whole training graph, scores a random batch of training
//! triples and as many corruptions per triple as asked, and back-propagates the loss's
//! gradient with respect to the embeddings through the encoder.

use super::{bad, find, pick_output, Gradients, Params, TrainOptions};
use crate::Error;
use pigeon_ir::Module;
use pigeon_runtime::graph::{HeteroGraph, LinkSplits};
use pigeon_runtime::linkpred::{self, Ranking, Triple};
use pigeon_runtime::rng::Rng;
use pigeon_runtime::tensor::Tensor;
use pigeon_runtime::weights::WeightStore;
use std::collections::HashSet;

/// Link-prediction settings besides the optimiser's.
#[derive(Copy, Clone, Debug)]
pub struct LinkOptions {
    /// Corruptions per positive triple.
    pub negatives: usize,
    /// Positive triples scored per step (all of them when larger than the training set).
    pub batch: usize,
}

/// Which triples to rank.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkSplit {
    /// The validation triples.
    Valid,
    /// The test triples.
    Test,
}

/// An encoder and a DistMult decoder being trained on one knowledge graph.
pub struct LinkTrainer<'g> {
    graph: &'g HeteroGraph,
    splits: &'g LinkSplits,
    grads: Gradients,
    /// The parameters: the encoder's, and the relation vectors as `extra[0]`.
    pub params: Params,
    output: String,
    known: HashSet<Triple>,
    rng: Rng,
    link: LinkOptions,
}

impl<'g> LinkTrainer<'g> {
    /// Prepares training: the graph must carry link splits, the model one node output of
    /// embeddings. `weights` are taken as they are (from a checkpoint) or initialised.
    pub fn new(
        module: Module,
        graph: &'g HeteroGraph,
        opts: &TrainOptions,
        link: LinkOptions,
        weights: Option<WeightStore>,
    ) -> Result<Self, Error> {
        let splits = graph.link_splits.as_ref().ok_or_else(|| {
            bad(format!(
                "graph `{}` has no train/valid/test triples (use a `triples:` graph)",
                graph.name
            ))
        })?;
        let (output, ty) = pick_output(&module, &opts.output, "node embeddings")?;
        if ty.domain != pigeon_ir::Domain::Node || ty.shape.rank() != 1 {
            return Err(bad(format!(
                "output `{output}` is {ty}; DistMult needs node [dim] embeddings"
            )));
        }
        let dim = ty.shape.numel();
        let relations = graph.base_relations;
        let mut rng = Rng::for_stream(opts.seed, "distmult");
        // Glorot-uniform relation vectors, as the model's own weights.
        let limit = (6.0 / (relations + dim) as f64).sqrt();
        let data = (0..relations * dim).map(|_| rng.uniform(-limit, limit)).collect();
        let rel = Tensor::from_vec(relations, ty.shape.clone(), data)?;
        let mut params =
            Params::new(&module, graph, opts, weights, vec![("relations".into(), rel)])?;
        // Unit-variance embeddings make DistMult's triple products start in the hundreds and
        // Adam's first steps collapse every score to 0; start from variance 1 / width.
        let width = module.inputs().iter().map(|d| d.ty.shape.numel()).max().unwrap_or(1);
        params.scale_learned(1.0 / (width as f64).sqrt());
        let refs: Vec<&str> = params.learned_inputs().iter().map(String::as_str).collect();
        let mut grads = opts.engine(Gradients::new(&module, &refs)?, graph)?;
        if opts.pin_inputs {
            grads.pin(params.take_constant_inputs())?;
        }
        let known = splits.train.iter().chain(&splits.valid).chain(&splits.test).copied().collect();
        Ok(LinkTrainer { graph, splits, grads, params, output, known, rng, link })
    }

    /// The differentiated encoder.
    pub fn gradients(&self) -> &Gradients {
        &self.grads
    }

    fn relations(&self) -> &Tensor {
        &self.params.extra[0].1
    }

    /// One step (with fresh dropout masks where the model has dropout); returns the batch's
    /// loss (before the update).
    pub fn step(&mut self) -> Result<f64, Error> {
        self.params.set_dropout(true);
        let (g, p) = (self.graph, &self.params);
        let outs = self.grads.forward(g, p.inputs(), &p.weights)?;
        let emb = find(&outs.outputs, &self.output)?;
        let train = &self.splits.train;
        let positives: Vec<Triple> = if self.link.batch >= train.len() {
            train.clone()
        } else {
            (0..self.link.batch)
                .map(|_| train[self.rng.below(train.len() as u64) as usize])
                .collect()
        };
        let negatives = linkpred::corrupt(&positives, emb.rows, self.link.negatives, &mut self.rng);
        let (loss, de, dr) = linkpred::bce_loss(emb, self.relations(), &positives, &negatives)?;
        let seeds = vec![(self.output.clone(), de)];
        let p = &mut self.params;
        let grads = self.grads.backward(g, &mut p.inputs, &p.weights, outs, seeds)?;
        self.params.update(&self.grads, &grads, &[&dr.data])?;
        self.params.set_dropout(false);
        Ok(loss)
    }

    /// Filtered ranking of the first `limit` triples of a split (all when `None`).
    pub fn evaluate(&self, split: LinkSplit, limit: Option<usize>) -> Result<Ranking, Error> {
        let p = &self.params;
        let outs = self.grads.forward(self.graph, p.inputs(), &p.weights)?;
        let emb = find(&outs.outputs, &self.output)?;
        let triples = match split {
            LinkSplit::Valid => &self.splits.valid,
            LinkSplit::Test => &self.splits.test,
        };
        let n = limit.unwrap_or(triples.len()).min(triples.len());
        Ok(linkpred::filtered_ranking(emb, self.relations(), &triples[..n], &self.known)?)
    }
}
