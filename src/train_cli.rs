//! `pigeon train` and `pigeon eval`: node classification on a labelled graph, with a progress
//! bar (running loss and accuracy), per-epoch metrics as JSON lines or CSV, an SVG curve,
//! safetensors checkpoints and a final report; `--repeat N` trains N seeds and reports the mean
//! and standard deviation of the test accuracy. Multi-label graphs (IMDB) report micro- and
//! macro-F1 wherever single-label ones report accuracy: every report goes through the
//! trainer's list of measures.

use crate::{load_graph, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use pigeon::ir::Module;
use pigeon::runtime::optim::Optimizer;
use pigeon::runtime::tensor::Tensor;
use pigeon::runtime::weights::{save_tensors, WeightStore};
use pigeon::runtime::HeteroGraph;
use pigeon::train::{Measure, Metrics, Params, TrainOptions, Trainer};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The update rule.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
pub enum OptimizerArg {
    /// Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8).
    Adam,
    /// SGD with `--momentum`.
    Sgd,
}

/// Where training runs.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
pub enum TrainBackendArg {
    /// Forward and backward plans, optimised for the graph, on the CPU back end.
    Cpu,
    /// The f64 reference interpreter.
    Reference,
}

/// What to train for.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
pub enum TaskArg {
    /// Link prediction when the graph has train/valid/test triples and no node labels,
    /// node classification otherwise.
    Auto,
    /// Node classification (softmax cross-entropy over labelled nodes; sigmoid binary
    /// cross-entropy on multi-label graphs).
    Classify,
    /// Link prediction (DistMult decoder, negative sampling, filtered MRR).
    Link,
}

/// Arguments of `pigeon train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The `.rgnn` file.
    pub file: PathBuf,
    /// The graph spec (see `pigeon run --help`): with node labels for classification, with
    /// train/valid/test triples (`triples:`) for link prediction.
    #[arg(long)]
    pub graph: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task.
    #[arg(long, value_enum, default_value = "auto")]
    pub task: TaskArg,
    /// Link prediction: corruptions per positive triple.
    #[arg(long, default_value_t = 1)]
    pub negatives: usize,
    /// Link prediction: positive triples scored per epoch.
    #[arg(long, default_value_t = 30000)]
    pub batch: usize,
    /// Link prediction: rank only the first N test (and validation) triples.
    #[arg(long)]
    pub eval_triples: Option<usize>,
    /// Number of full-batch epochs.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// The optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Seed of the weights and of learned inputs; with `--repeat`, the first seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train this many times with seeds `seed, seed + 1, ...` and report mean and spread.
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Where training runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: TrainBackendArg,
    #[command(flatten)]
    pub opt: crate::OptArgs,
    /// The output holding the class logits (default: the model's only output).
    #[arg(long)]
    pub output: Option<String>,
    /// Keep inputs the graph has no data for at their random values instead of learning them
    /// as embeddings.
    #[arg(long)]
    pub fixed_inputs: bool,
    /// Per-epoch metrics: JSON lines, or CSV when the name ends in `.csv`.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// The loss and accuracy curve, as SVG.
    #[arg(long)]
    pub curve: Option<PathBuf>,
    /// Directory for the final weights (`weights.safetensors`) and learned inputs
    /// (`inputs.safetensors`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// Arguments of `pigeon eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The `.rgnn` file.
    file: PathBuf,
    /// The graph spec; it must carry node labels.
    #[arg(long)]
    graph: String,
    #[command(flatten)]
    model: ModelArgs,
    /// A directory written by `pigeon train --checkpoint`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The output holding the class logits (or, for link prediction, the node embeddings).
    #[arg(long)]
    pub output: Option<String>,
    /// The task the checkpoint was trained for.
    #[arg(long, value_enum, default_value = "auto")]
    pub task: TaskArg,
    /// Link prediction: rank only the first N test (and validation) triples.
    #[arg(long)]
    pub eval_triples: Option<usize>,
}

/// The model's parameters with `classes` (or else `out_dim`) set to the graph's number of
/// classes when the command line leaves it open.
fn params_for(
    src: &pigeon::frontend::SourceFile,
    model: &ModelArgs,
    graph: &HeteroGraph,
) -> Result<Vec<(String, i64)>> {
    let mut params = model.params.clone();
    let classes = graph.labels.as_ref().map(|l| l.class_names.len()).unwrap_or(0) as i64;
    let module = pigeon::compile(src, model.model.as_deref(), &params)?;
    let declared: Vec<&str> = module.params.iter().map(|(n, _)| n.as_str()).collect();
    for name in ["classes", "out_dim"] {
        if declared.contains(&name) {
            if classes > 0 && !params.iter().any(|(n, _)| n == name) {
                params.push((name.to_string(), classes));
            }
            break;
        }
    }
    Ok(params)
}

/// The training options of the command line, with weights seeded by `seed`.
pub(crate) fn options(args: &TrainArgs, seed: u64) -> TrainOptions {
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => Optimizer::Adam,
        OptimizerArg::Sgd => Optimizer::Sgd { momentum: args.momentum },
    };
    TrainOptions {
        lr: args.lr,
        weight_decay: args.weight_decay,
        optimizer,
        seed,
        output: args.output.clone(),
        learn_inputs: !args.fixed_inputs,
        plans: plans(args.backend, &args.opt),
        pin_inputs: true,
    }
}

/// The plan settings of `--backend` (`None`: the reference interpreter).
pub(crate) fn plans(
    backend: TrainBackendArg,
    opt: &crate::OptArgs,
) -> Option<(pigeon::passes::Options, pigeon::runtime::cpu::Precision)> {
    (backend == TrainBackendArg::Cpu).then(|| (opt.options(), opt.precision()))
}

fn pct(x: Option<f64>) -> String {
    x.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into())
}

/// The names of the splits of [`Metrics::splits`].
const SPLITS: [&str; 3] = ["train", "valid", "test"];

/// One split's values of `measures`: `88.89%` for a single measure (accuracy), `micro-F1
/// 60.00% macro-F1 55.00%` for several, `-` for an empty split.
fn show(measures: &[Measure], values: Option<&Vec<f64>>) -> String {
    match (measures, values) {
        (_, None) => "-".into(),
        ([_], Some(v)) => pct(v.first().copied()),
        (_, Some(v)) => measures
            .iter()
            .zip(v)
            .map(|(m, x)| format!("{} {}", m.name, pct(Some(*x))))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `train ...  valid ...  test ...` with the measures of each split.
fn show_splits(measures: &[Measure], m: &Metrics) -> String {
    let splits = SPLITS.iter().zip(&m.splits);
    splits
        .map(|(s, v)| format!("{s} {}", show(measures, v.as_ref())))
        .collect::<Vec<_>>()
        .join("  ")
}

/// One training run's per-epoch metrics and its final evaluation.
struct RunResult {
    epochs: Vec<(Metrics, f64)>,
    last: Metrics,
}

impl RunResult {
    /// The epoch (1-based) with the best validation score (accuracy, micro-F1; the first on
    /// ties), that score and the test measures there: model selection without looking at the
    /// test split. `None` without a validation split.
    fn best_valid(&self) -> Option<(usize, f64, &Vec<f64>)> {
        let mut best: Option<(usize, f64, &Vec<f64>)> = None;
        for (i, (m, _)) in self.epochs.iter().enumerate() {
            if let (Some(v), Some(t)) = (m.primary(1), &m.splits[2]) {
                if best.is_none_or(|b| v > b.1) {
                    best = Some((i + 1, v, t));
                }
            }
        }
        best
    }
}

/// Mean, standard deviation, minimum and maximum, as percentages.
fn spread(xs: &[f64]) -> String {
    let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let var = xs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / xs.len().max(1) as f64;
    format!(
        "mean {:.2}%, std {:.2}%, min {:.2}%, max {:.2}%",
        100.0 * mean,
        100.0 * var.sqrt(),
        100.0 * xs.iter().copied().fold(1.0, f64::min),
        100.0 * xs.iter().copied().fold(0.0, f64::max)
    )
}

/// Whether `task` on `graph` is link prediction.
fn task_is_link(task: TaskArg, graph: &HeteroGraph) -> bool {
    match task {
        TaskArg::Link => true,
        TaskArg::Classify => false,
        TaskArg::Auto => graph.labels.is_none() && graph.link_splits.is_some(),
    }
}

/// `pigeon train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    for p in [&args.metrics, &args.curve].into_iter().flatten() {
        pigeon::runtime::io::check_writable(p)?;
    }
    if args.epochs == 0 || args.repeat == 0 {
        bail!("--epochs and --repeat must be at least 1");
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) || args.weight_decay < 0.0 {
        bail!("--lr must be positive and --weight-decay not negative");
    }
    let src = pigeon::read_source(&args.file)?;
    let graph = load_graph(&args.graph)?;
    if task_is_link(args.task, &graph) {
        let module = pigeon::compile(&src, args.model.model.as_deref(), &args.model.params)?;
        return crate::train_link::train_link(args, &graph, &module);
    }
    let params = params_for(&src, &args.model, &graph)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &params)?;
    let mut results = Vec::new();
    let mut measures = pigeon::train::ACCURACY;
    for r in 0..args.repeat {
        let seed = args.seed + r;
        let mut trainer = Trainer::new(module.clone(), &graph, &options(args, seed), None)?;
        measures = trainer.measures();
        if r == 0 {
            describe(&trainer, &graph, &module);
        }
        let result = run_epochs(&mut trainer, args, seed)?;
        report(seed, measures, &result);
        if r == 0 {
            write_outputs(args, &trainer, &result, &module)?;
        }
        results.push(result);
    }
    if args.repeat > 1 {
        summarise(measures, &results);
    }
    Ok(())
}

/// The final measures of the run with `seed`, and those at its best validation epoch.
fn report(seed: u64, measures: &[Measure], result: &RunResult) {
    let epochs = &result.epochs;
    println!(
        "seed {seed}: {}  ({:.3} s/epoch)",
        show_splits(measures, &result.last),
        epochs.iter().map(|e| e.1).sum::<f64>() / epochs.len() as f64
    );
    if let Some((epoch, v, t)) = result.best_valid() {
        let there: Vec<String> = measures
            .iter()
            .zip(t)
            .enumerate()
            .map(|(i, (m, x))| match i {
                0 => format!("test {} there {}", m.name, pct(Some(*x))),
                _ => format!("{} {}", m.name, pct(Some(*x))),
            })
            .collect();
        println!(
            "seed {seed}: best validation {} {} at epoch {epoch}; {}",
            measures[0].name,
            pct(Some(v)),
            there.join(", ")
        );
    }
}

/// The spread over seeds of each test measure, after the last epoch and at the best validation
/// epoch.
fn summarise(measures: &[Measure], results: &[RunResult]) {
    for (i, m) in measures.iter().enumerate() {
        let last: Vec<f64> =
            results.iter().filter_map(|r| r.last.splits[2].as_ref()?.get(i).copied()).collect();
        if !last.is_empty() {
            println!("test {} over {} seeds: {}", m.name, last.len(), spread(&last));
        }
        let selected: Vec<f64> =
            results.iter().filter_map(|r| r.best_valid()?.2.get(i).copied()).collect();
        if !selected.is_empty() {
            println!(
                "test {} at the best validation epoch over {} seeds: {}",
                m.name,
                selected.len(),
                spread(&selected)
            );
        }
    }
}

fn describe(trainer: &Trainer, graph: &HeteroGraph, module: &pigeon::ir::Module) {
    let stats = pigeon::runtime::layout::graph_stats(graph);
    let labels = graph.labels.as_ref();
    println!(
        "training {} on {} ({} nodes, {} edges, {} relations; {} train / {} valid / {} test labels)",
        module.name,
        graph.name,
        graph.num_nodes(),
        graph.num_edges(),
        graph.num_relations(),
        labels.map_or(0, |l| l.train.len()),
        labels.map_or(0, |l| l.valid.len()),
        labels.map_or(0, |l| l.test.len())
    );
    println!("backend: {} for forward and backward", trainer.gradients().engine_name());
    for name in trainer.params.embeddings() {
        println!("input `{name}`: the graph has no such feature; learned as a node embedding");
    }
    let saved = trainer.gradients().saved(&stats);
    let total: usize = saved.iter().map(|s| s.1).sum();
    let (fwd, bwd) = trainer.gradients().modules();
    println!(
        "forward {} instructions, backward {}; {} saved activations, {} in f32",
        fwd.insts.len(),
        bwd.insts.len(),
        saved.len(),
        pigeon::runtime::memory::human(total as u128)
    );
}

fn run_epochs(trainer: &mut Trainer, args: &TrainArgs, seed: u64) -> Result<RunResult> {
    let bar = indicatif::ProgressBar::new(args.epochs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "seed {prefix} [{bar:30}] {pos}/{len} epochs {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(seed.to_string());
    let mut epochs = Vec::with_capacity(args.epochs);
    for _ in 0..args.epochs {
        let t = Instant::now();
        let m = trainer.step()?;
        let secs = t.elapsed().as_secs_f64();
        if !m.loss.is_finite() {
            bar.abandon();
            bail!("the loss became {} at epoch {}: lower --lr", m.loss, epochs.len() + 1);
        }
        let train = show(trainer.measures(), m.splits[0].as_ref());
        bar.set_message(format!("loss {:.4} train {train}", m.loss));
        bar.inc(1);
        epochs.push((m, secs));
    }
    bar.finish_and_clear();
    let last = trainer.evaluate()?;
    Ok(RunResult { epochs, last })
}

fn write_outputs(
    args: &TrainArgs,
    trainer: &Trainer,
    result: &RunResult,
    module: &pigeon::ir::Module,
) -> Result<()> {
    let measures = trainer.measures();
    // (split, measure) pairs in column order: train_acc, valid_acc, test_acc for single-label
    // graphs.
    let pairs: Vec<(usize, usize)> =
        (0..SPLITS.len()).flat_map(|s| (0..measures.len()).map(move |i| (s, i))).collect();
    let value = |m: &Metrics, (s, i): (usize, usize)| m.splits[s].as_ref()?.get(i).copied();
    if let Some(path) = &args.metrics {
        let rows = result
            .epochs
            .iter()
            .enumerate()
            .map(|(e, (m, secs))| {
                let mut row = vec![Some((e + 1) as f64), Some(m.loss)];
                row.extend(pairs.iter().map(|&p| value(m, p)));
                row.push(Some(*secs));
                row
            })
            .collect::<Vec<_>>();
        let mut columns = vec!["epoch".to_string(), "loss".to_string()];
        columns.extend(pairs.iter().map(|&(s, i)| format!("{}_{}", SPLITS[s], measures[i].key)));
        columns.push("seconds".into());
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        write_metrics(path, &columns, &rows)?;
    }
    if let Some(path) = &args.curve {
        use crate::curve::{write_svg, Series};
        use plotters::style::RGBColor;
        let pts = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Vec<(f64, f64)> {
            result
                .epochs
                .iter()
                .enumerate()
                .filter_map(|(i, (m, _))| f(m).map(|v| ((i + 1) as f64, v)))
                .collect()
        };
        let loss =
            Series { name: "loss", color: RGBColor(200, 40, 40), points: pts(&|m| Some(m.loss)) };
        // Per split, a colour for its first measure and a lighter one for the second.
        const COLORS: [[RGBColor; 2]; 3] = [
            [RGBColor(30, 90, 200), RGBColor(120, 160, 230)],
            [RGBColor(230, 150, 20), RGBColor(240, 200, 120)],
            [RGBColor(30, 150, 60), RGBColor(120, 200, 130)],
        ];
        let names: Vec<String> =
            pairs.iter().map(|&(s, i)| format!("{} {}", SPLITS[s], measures[i].name)).collect();
        let scores: Vec<Series> = pairs
            .iter()
            .zip(&names)
            .map(|(&(s, i), name)| Series {
                name,
                color: COLORS[s][i.min(1)],
                points: pts(&|m| value(m, (s, i))),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let axis: Vec<&str> = measures.iter().map(|m| m.name).collect();
        let title = format!("{} on {}", module.name, args.graph);
        write_svg(path, &title, &loss, &axis.join(", "), &scores)?;
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.checkpoint {
        save_checkpoint(dir, &trainer.params, module)?;
    }
    Ok(())
}

/// Writes a checkpoint into `dir`: `weights.safetensors` (loadable by `pigeon run --weights`),
/// the learned tables and inputs in `inputs.safetensors`, and host-side parameters (DistMult's
/// relation vectors) in `extra.safetensors`.
pub(crate) fn save_checkpoint(dir: &Path, params: &Params, module: &Module) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    params.weights.save(&dir.join("weights.safetensors"), module)?;
    let learned: Vec<(String, Tensor)> = params
        .inputs()
        .iter()
        .filter(|(n, _)| params.learned_inputs().contains(n))
        .cloned()
        .collect();
    if !learned.is_empty() {
        save_tensors(&dir.join("inputs.safetensors"), &learned)?;
    }
    if !params.extra.is_empty() {
        save_tensors(&dir.join("extra.safetensors"), &params.extra)?;
    }
    println!("wrote checkpoint {}", dir.display());
    Ok(())
}

/// The weights of the checkpoint in `dir`.
fn checkpoint_weights(dir: &Path, module: &Module, graph: &HeteroGraph) -> Result<WeightStore> {
    let path = dir.join("weights.safetensors");
    Ok(WeightStore::load(&path, module, graph.num_relations(), graph.num_node_types())?)
}

/// Loads the learned inputs and host-side parameters of the checkpoint in `dir` into `params`
/// (whose weights came from [`checkpoint_weights`]).
pub(crate) fn load_checkpoint_rest(dir: &Path, params: &mut Params) -> Result<()> {
    if !params.learned_inputs().is_empty() {
        let path = dir.join("inputs.safetensors");
        params.set_inputs(load_named(&path, params.learned_inputs(), "learned inputs")?)?;
    }
    let extra: Vec<String> = params.extra.iter().map(|(n, _)| n.clone()).collect();
    if !extra.is_empty() {
        let path = dir.join("extra.safetensors");
        params.set_extra(load_named(&path, &extra, "host-side parameters")?)?;
    }
    Ok(())
}

/// `pigeon eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let src = pigeon::read_source(&args.file)?;
    let graph = load_graph(&args.graph)?;
    if task_is_link(args.task, &graph) {
        let module = pigeon::compile(&src, args.model.model.as_deref(), &args.model.params)?;
        let weights = checkpoint_weights(&args.checkpoint, &module, &graph)?;
        return crate::train_link::eval_link(args, &graph, module, weights);
    }
    let params = params_for(&src, &args.model, &graph)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &params)?;
    let weights = checkpoint_weights(&args.checkpoint, &module, &graph)?;
    let opts = eval_options(args.output.clone());
    let mut trainer = Trainer::new(module, &graph, &opts, Some(weights))?;
    load_checkpoint_rest(&args.checkpoint, &mut trainer.params)?;
    let m = trainer.evaluate()?;
    println!("loss {:.4}  {}", m.loss, show_splits(trainer.measures(), &m));
    Ok(())
}

/// Training options for evaluating a checkpoint (no step is taken).
pub(crate) fn eval_options(output: Option<String>) -> TrainOptions {
    TrainOptions {
        lr: 1.0,
        weight_decay: 0.0,
        optimizer: Optimizer::Adam,
        seed: 0,
        output,
        learn_inputs: true,
        plans: None,
        pin_inputs: true,
    }
}

/// The tensors `names` of the safetensors file `path` (a checkpoint's `what`).
fn load_named(path: &Path, names: &[String], what: &str) -> Result<Vec<(String, Tensor)>> {
    let tensors = pigeon::runtime::weights::load_tensors(path)
        .with_context(|| format!("the checkpoint's {what} ({})", path.display()))?;
    names
        .iter()
        .map(|n| {
            tensors
                .iter()
                .find(|(m, _)| m == n)
                .cloned()
                .with_context(|| format!("{} has no tensor `{n}`", path.display()))
        })
        .collect()
}

/// Per-epoch rows as CSV (when `path` ends in `.csv`; a missing value is an empty cell) or as
/// JSON lines (a missing value is `null`), written atomically.
pub fn write_metrics(path: &Path, columns: &[&str], rows: &[Vec<Option<f64>>]) -> Result<()> {
    let csv = path.extension().is_some_and(|e| e == "csv");
    let mut text = String::new();
    if csv {
        text.push_str(&columns.join(","));
        text.push('\n');
    }
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(c, v)| match (csv, v) {
                (true, v) => v.map(|x| x.to_string()).unwrap_or_default(),
                (false, v) => {
                    format!("\"{c}\":{}", v.map(|x| x.to_string()).unwrap_or_else(|| "null".into()))
                }
            })
            .collect();
        if csv {
            text.push_str(&cells.join(","));
        } else {
            text.push('{');
            text.push_str(&cells.join(","));
            text.push('}');
        }
        text.push('\n');
    }
    pigeon::runtime::io::write_atomic(path, text.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
