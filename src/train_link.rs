//! `pigeon train --task link`: an encoder model and a DistMult decoder on a knowledge graph,
//! with a progress bar (running loss), per-epoch losses as JSON lines or CSV, an SVG loss
//! curve, a checkpoint (with the relation vectors), a filtered ranking (MRR, Hits@1/3/10) of
//! the validation and test triples per seed, and the mean over seeds with `--repeat`.
//! `pigeon eval` of such a checkpoint ranks again.

use crate::train_cli::{EvalArgs, TrainArgs};
use anyhow::{bail, Result};
use pigeon::runtime::linkpred::Ranking;
use pigeon::runtime::weights::WeightStore;
use pigeon::runtime::HeteroGraph;
use pigeon::train::{LinkOptions, LinkSplit, LinkTrainer};
use std::time::Instant;

/// Trains for link prediction (one run per seed of `--repeat`) and reports the ranking.
pub fn train_link(
    args: &TrainArgs,
    graph: &HeteroGraph,
    module: &pigeon::ir::Module,
) -> Result<()> {
    if args.negatives == 0 || args.batch == 0 {
        bail!("--negatives and --batch must be at least 1");
    }
    let link = LinkOptions { negatives: args.negatives, batch: args.batch };
    let mut tests = Vec::new();
    for r in 0..args.repeat {
        let seed = args.seed + r;
        let opts = crate::train_cli::options(args, seed);
        let mut trainer = LinkTrainer::new(module.clone(), graph, &opts, link, None)?;
        if r == 0 {
            describe(&trainer, graph, module);
        }
        let losses = run_epochs(&mut trainer, args.epochs)?;
        if r == 0 {
            write_losses(args, &losses, module)?;
            if let Some(dir) = &args.checkpoint {
                crate::train_cli::save_checkpoint(dir, &trainer.params, module)?;
            }
        }
        let per_epoch = losses.iter().map(|l| l.1).sum::<f64>() / losses.len() as f64;
        println!(
            "seed {seed}: final loss {:.4}; {per_epoch:.3} s/epoch",
            losses.last().map_or(0.0, |l| l.0)
        );
        let [_, test] = rank(&trainer, args.eval_triples)?;
        tests.push(test);
    }
    if args.repeat > 1 {
        let n = tests.len() as f64;
        let mean = |f: fn(&Ranking) -> f64| tests.iter().map(f).sum::<f64>() / n;
        let mrr = mean(|r| r.mrr);
        let std = (tests.iter().map(|r| (r.mrr - mrr).powi(2)).sum::<f64>() / n).sqrt();
        println!(
            "test over {} seeds: filtered MRR mean {mrr:.4}, std {std:.4}; Hits@1 {:.4}, Hits@3 {:.4}, Hits@10 {:.4}",
            tests.len(),
            mean(|r| r.hits1),
            mean(|r| r.hits3),
            mean(|r| r.hits10)
        );
    }
    Ok(())
}

/// `pigeon eval` of a link-prediction checkpoint: the filtered ranking of both splits.
pub fn eval_link(
    args: &EvalArgs,
    graph: &HeteroGraph,
    module: pigeon::ir::Module,
    weights: WeightStore,
) -> Result<()> {
    let opts = crate::train_cli::eval_options(args.output.clone());
    let link = LinkOptions { negatives: 1, batch: 1 };
    let mut trainer = LinkTrainer::new(module, graph, &opts, link, Some(weights))?;
    crate::train_cli::load_checkpoint_rest(&args.checkpoint, &mut trainer.params)?;
    rank(&trainer, args.eval_triples)?;
    Ok(())
}

fn describe(trainer: &LinkTrainer, graph: &HeteroGraph, module: &pigeon::ir::Module) {
    let splits = graph.link_splits.as_ref().map(|s| (s.train.len(), s.valid.len(), s.test.len()));
    let (tr, va, te) = splits.unwrap_or_default();
    println!(
        "training {} for link prediction on {} ({} entities, {} edges; {tr} / {va} / {te} train / valid / test triples)",
        module.name,
        graph.name,
        graph.num_nodes(),
        graph.num_edges()
    );
    println!(
        "backend: {} for forward and backward; decoder DistMult",
        trainer.gradients().engine_name()
    );
    for name in trainer.params.embeddings() {
        println!("input `{name}`: the graph has no such feature; learned as a node embedding");
    }
}

/// `epochs` steps with a progress bar: each epoch's loss and seconds.
fn run_epochs(trainer: &mut LinkTrainer, epochs: usize) -> Result<Vec<(f64, f64)>> {
    let bar = indicatif::ProgressBar::new(epochs as u64);
    let mut losses = Vec::with_capacity(epochs);
    for epoch in 1..=epochs {
        let t = Instant::now();
        let loss = trainer.step()?;
        if !loss.is_finite() {
            bar.abandon();
            bail!("the loss became {loss} at epoch {epoch}: lower --lr");
        }
        losses.push((loss, t.elapsed().as_secs_f64()));
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(losses)
}

/// Prints and returns the filtered ranking of the validation and test triples (the first
/// `limit` of each, or all).
fn rank(trainer: &LinkTrainer, limit: Option<usize>) -> Result<[Ranking; 2]> {
    let mut out = Vec::new();
    for (split, name) in [(LinkSplit::Valid, "valid"), (LinkSplit::Test, "test")] {
        let t = Instant::now();
        let r = trainer.evaluate(split, limit)?;
        println!(
            "{name}: filtered MRR {:.4}, Hits@1 {:.4}, Hits@3 {:.4}, Hits@10 {:.4} ({} ranks, {:.1} s)",
            r.mrr,
            r.hits1,
            r.hits3,
            r.hits10,
            r.count,
            t.elapsed().as_secs_f64()
        );
        out.push(r);
    }
    let [valid, test]: [Ranking; 2] =
        out.try_into().map_err(|_| anyhow::anyhow!("two splits ranked"))?;
    Ok([valid, test])
}

fn write_losses(
    args: &TrainArgs,
    losses: &[(f64, f64)],
    module: &pigeon::ir::Module,
) -> Result<()> {
    if let Some(path) = &args.metrics {
        let rows: Vec<Vec<Option<f64>>> = losses
            .iter()
            .enumerate()
            .map(|(i, (loss, secs))| vec![Some((i + 1) as f64), Some(*loss), Some(*secs)])
            .collect();
        crate::train_cli::write_metrics(path, &["epoch", "loss", "seconds"], &rows)?;
    }
    if let Some(path) = &args.curve {
        use crate::curve::{write_svg, Series};
        let points = losses.iter().enumerate().map(|(i, l)| ((i + 1) as f64, l.0)).collect();
        let loss = Series { name: "loss", color: plotters::style::RGBColor(200, 40, 40), points };
        write_svg(
            path,
            &format!("{} on {} (link prediction)", module.name, args.graph),
            &loss,
            "accuracy",
            &[],
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
