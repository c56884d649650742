//! `pigeon train` and `pigeon eval`: node classification on a labelled graph, with a progress
//! bar (running loss and accuracy), per-epoch metrics as JSON lines or CSV, an SVG curve,
//! safetensors checkpoints and a final report; `--repeat N` trains N seeds and reports the mean
//! and standard deviation of the test accuracy.

use crate::{load_graph, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use pigeon::runtime::optim::Optimizer;
use pigeon::runtime::weights::{save_tensors, WeightStore};
use pigeon::runtime::HeteroGraph;
use pigeon::train::{Metrics, TrainOptions, Trainer};
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
    /// Node classification (softmax cross-entropy over labelled nodes).
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
    checkpoint: PathBuf,
    /// The output holding the class logits.
    #[arg(long)]
    output: Option<String>,
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

/// One training run's per-epoch metrics and its final evaluation.
struct RunResult {
    epochs: Vec<(Metrics, f64)>,
    last: Metrics,
}

impl RunResult {
    /// The epoch (1-based) with the best validation accuracy (the first on ties) and its test
    /// accuracy: model selection without looking at the test split. `None` without a
    /// validation split.
    fn best_valid(&self) -> Option<(usize, f64, f64)> {
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, (m, _)) in self.epochs.iter().enumerate() {
            if let (Some(v), Some(t)) = (m.valid_acc, m.test_acc) {
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
    let link = match args.task {
        TaskArg::Link => true,
        TaskArg::Classify => false,
        TaskArg::Auto => graph.labels.is_none() && graph.link_splits.is_some(),
    };
    if link {
        let module = pigeon::compile(&src, args.model.model.as_deref(), &args.model.params)?;
        return crate::train_link::train_link(args, &graph, &module);
    }
    let params = params_for(&src, &args.model, &graph)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &params)?;
    let mut results = Vec::new();
    for r in 0..args.repeat {
        let seed = args.seed + r;
        let mut trainer = Trainer::new(module.clone(), &graph, &options(args, seed), None)?;
        if r == 0 {
            describe(&trainer, &graph, &module);
        }
        let result = run_epochs(&mut trainer, args, seed)?;
        println!(
            "seed {seed}: train {}  valid {}  test {}  ({:.3} s/epoch)",
            pct(result.last.train_acc),
            pct(result.last.valid_acc),
            pct(result.last.test_acc),
            result.epochs.iter().map(|e| e.1).sum::<f64>() / result.epochs.len() as f64
        );
        if let Some((epoch, v, t)) = result.best_valid() {
            println!(
                "seed {seed}: best validation accuracy {} at epoch {epoch}; test accuracy there {}",
                pct(Some(v)),
                pct(Some(t))
            );
        }
        if r == 0 {
            write_outputs(args, &trainer, &result, &module)?;
        }
        results.push(result);
    }
    if args.repeat > 1 {
        let accs: Vec<f64> = results.iter().filter_map(|r| r.last.test_acc).collect();
        if !accs.is_empty() {
            println!("test accuracy over {} seeds: {}", accs.len(), spread(&accs));
        }
        let selected: Vec<f64> =
            results.iter().filter_map(|r| r.best_valid().map(|b| b.2)).collect();
        if !selected.is_empty() {
            println!(
                "test accuracy at the best validation epoch over {} seeds: {}",
                selected.len(),
                spread(&selected)
            );
        }
    }
    Ok(())
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
        bar.set_message(format!("loss {:.4} train {}", m.loss, pct(m.train_acc)));
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
    if let Some(path) = &args.metrics {
        let rows = result
            .epochs
            .iter()
            .enumerate()
            .map(|(i, (m, secs))| {
                vec![
                    Some((i + 1) as f64),
                    Some(m.loss),
                    m.train_acc,
                    m.valid_acc,
                    m.test_acc,
                    Some(*secs),
                ]
            })
            .collect::<Vec<_>>();
        let columns = ["epoch", "loss", "train_acc", "valid_acc", "test_acc", "seconds"];
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
        let accs = [
            Series {
                name: "train accuracy",
                color: RGBColor(30, 90, 200),
                points: pts(&|m| m.train_acc),
            },
            Series {
                name: "valid accuracy",
                color: RGBColor(230, 150, 20),
                points: pts(&|m| m.valid_acc),
            },
            Series {
                name: "test accuracy",
                color: RGBColor(30, 150, 60),
                points: pts(&|m| m.test_acc),
            },
        ];
        let accs: Vec<Series> = accs.into_iter().filter(|s| !s.points.is_empty()).collect();
        write_svg(path, &format!("{} on {}", module.name, args.graph), &loss, &accs)?;
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.checkpoint {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        trainer.params.weights.save(&dir.join("weights.safetensors"), module)?;
        let learned: Vec<(String, pigeon::runtime::tensor::Tensor)> = trainer
            .params
            .inputs()
            .iter()
            .filter(|(n, _)| trainer.params.learned_inputs().contains(n))
            .cloned()
            .collect();
        if !learned.is_empty() {
            save_tensors(&dir.join("inputs.safetensors"), &learned)?;
        }
        println!("wrote checkpoint {}", dir.display());
    }
    Ok(())
}

/// `pigeon eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let src = pigeon::read_source(&args.file)?;
    let graph = load_graph(&args.graph)?;
    let params = params_for(&src, &args.model, &graph)?;
    let module = pigeon::compile(&src, args.model.model.as_deref(), &params)?;
    let weights = WeightStore::load(
        &args.checkpoint.join("weights.safetensors"),
        &module,
        graph.num_relations(),
        graph.num_node_types(),
    )?;
    let opts = TrainOptions {
        lr: 1.0,
        weight_decay: 0.0,
        optimizer: Optimizer::Adam,
        seed: 0,
        output: args.output.clone(),
        learn_inputs: true,
        plans: None,
    };
    let mut trainer = Trainer::new(module, &graph, &opts, Some(weights))?;
    let inputs_file = args.checkpoint.join("inputs.safetensors");
    if !trainer.params.learned_inputs().is_empty() {
        trainer.params.set_inputs(load_inputs(&inputs_file, trainer.params.learned_inputs())?)?;
    }
    let m = trainer.evaluate()?;
    println!(
        "loss {:.4}  train {}  valid {}  test {}",
        m.loss,
        pct(m.train_acc),
        pct(m.valid_acc),
        pct(m.test_acc)
    );
    Ok(())
}

fn load_inputs(
    path: &Path,
    names: &[String],
) -> Result<Vec<(String, pigeon::runtime::tensor::Tensor)>> {
    let tensors = pigeon::runtime::weights::load_tensors(path)
        .with_context(|| format!("the checkpoint's learned inputs ({})", path.display()))?;
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
