//! `pigeon train --task link`: an encoder model and a DistMult decoder on a knowledge graph,
//! with a progress bar (running loss), per-epoch losses as JSON lines or CSV, an SVG loss
//! curve, and a final filtered ranking (MRR, Hits@1/3/10) of the validation and test triples.

use crate::train_cli::TrainArgs;
use anyhow::{bail, Result};
use pigeon::runtime::HeteroGraph;
use pigeon::train::{LinkOptions, LinkSplit, LinkTrainer};
use std::time::Instant;

/// Trains for link prediction and reports the ranking.
pub fn train_link(
    args: &TrainArgs,
    graph: &HeteroGraph,
    module: &pigeon::ir::Module,
) -> Result<()> {
    if args.repeat != 1 || args.checkpoint.is_some() {
        bail!("--repeat and --checkpoint are for node classification only (so far)");
    }
    if args.negatives == 0 || args.batch == 0 {
        bail!("--negatives and --batch must be at least 1");
    }
    let opts = crate::train_cli::options(args, args.seed);
    let link = LinkOptions { negatives: args.negatives, batch: args.batch };
    let mut trainer = LinkTrainer::new(module.clone(), graph, &opts, link)?;
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
    let bar = indicatif::ProgressBar::new(args.epochs as u64);
    let mut losses = Vec::with_capacity(args.epochs);
    for epoch in 1..=args.epochs {
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
    let per_epoch = losses.iter().map(|l| l.1).sum::<f64>() / losses.len() as f64;
    write_losses(args, &losses, module)?;
    let limit = args.eval_triples;
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
    }
    println!("final loss {:.4}; {per_epoch:.3} s/epoch", losses.last().map_or(0.0, |l| l.0));
    Ok(())
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
