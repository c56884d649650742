//! The `pigeon` command-line interface: parses arguments, calls the library, renders results
//! and errors. The only place in the workspace that prints or exits.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pigeon::runtime::{self, HeteroGraph};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod compile;
mod curve;
mod grad_cli;
mod run;
mod train_cli;
mod train_link;

use run::{BackendArg, RunOptions};

/// A compiler for relational graph neural networks.
#[derive(Parser)]
#[command(name = "pigeon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a model file and report every error.
    Check {
        /// The `.rgnn` file.
        file: PathBuf,
    },
    /// Print a model at a compilation stage.
    Dump {
        /// The `.rgnn` file.
        file: PathBuf,
        /// Which stage to print.
        #[arg(long, value_enum, default_value = "inter")]
        stage: Stage,
        /// Text, or a Graphviz data-flow graph.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Stop the pipeline after this pass (`opt` and `plan` stages).
        #[arg(long)]
        after: Option<String>,
        /// The graph whose sizes drive cost decisions (default: AIFB-like sizes).
        #[arg(long)]
        graph: Option<String>,
    },
    /// Compile a model and run it on a graph.
    Run {
        /// The `.rgnn` file.
        file: PathBuf,
        /// The graph: `rdf:DIR`, `triples:DIR`, `heco:DIR`, `hgb:DIR` or
        /// `synthetic:nodes=N,edges=E,relations=R,ntypes=T,seed=S`, each optionally followed by
        /// `,inverse` and `,self-loops`.
        #[arg(long)]
        graph: String,
        /// The executor: `auto` takes the GPU when one is present, the CPU otherwise.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Also run the reference interpreter, report the largest difference, and fail when it
        /// exceeds 1e-4 (f32), 1e-9 (f64), 5e-3 (TF32 GEMMs) or 3e-2 (BF16 GEMMs) of the
        /// output's largest magnitude.
        #[arg(long)]
        check: bool,
        /// Seed for weight initialisation and random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Load weights from a safetensors file instead of initialising them.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Save the initialised (or loaded) weights to a safetensors file.
        #[arg(long)]
        save_weights: Option<PathBuf>,
        /// Save the outputs to a safetensors file (written atomically).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Save the bound inputs to a safetensors file (for running peers on the same data).
        #[arg(long)]
        save_inputs: Option<PathBuf>,
    },
    /// Time a model on a graph: per-kernel and total medians, peak memory, ablations.
    Bench(bench::BenchArgs),
    /// Train a model: node classification on a labelled graph, or link prediction on a
    /// knowledge graph.
    Train(train_cli::TrainArgs),
    /// Evaluate a checkpoint written by `pigeon train --checkpoint`.
    Eval(train_cli::EvalArgs),
    /// Write the gradient of `sum(out * G)` with respect to every weight (for checks against
    /// other frameworks).
    Grad(grad_cli::GradArgs),
    /// Compile a model ahead of time: kernel plan, CUDA source, PTX.
    Compile(compile::CompileArgs),
    /// Inspect graphs.
    Graph {
        #[command(subcommand)]
        command: GraphCommand,
    },
}

#[derive(Subcommand)]
enum GraphCommand {
    /// Print nodes, edges, relations, node types, features and labels of a graph.
    Info {
        /// The graph spec (see `pigeon run --help`).
        spec: String,
    },
    /// Write a graph as safetensors (`src`, `dst`, `rel`, `node_type`, features), for peers.
    Export {
        /// The graph spec (see `pigeon run --help`).
        spec: String,
        /// The file to write (atomically).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ModelArgs {
    /// The model to use (default: the last model in the file).
    #[arg(long)]
    model: Option<String>,
    /// Override an integer parameter: `--param heads=4` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, i64)>,
}

/// Optimisation switches: each can be turned off on its own, so an ablation is one flag.
#[derive(clap::Args, Clone)]
pub struct OptArgs {
    /// Turn off linear-operator reordering.
    #[arg(long)]
    no_reorder: bool,
    /// Turn off compact materialization.
    #[arg(long)]
    no_compact: bool,
    /// Turn off kernel fusion.
    #[arg(long)]
    no_fuse: bool,
    /// Optimisation level: `-O0` turns every optimisation off.
    #[arg(short = 'O', default_value_t = 2)]
    level: u8,
    /// CPU arithmetic precision.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// GEMM arithmetic of the CUDA back end: f32 on CUDA cores, or TF32 / BF16 tensor cores.
    #[arg(long, value_enum, default_value = "simt")]
    gemm_math: GemmMathArg,
}

/// GEMM arithmetic of generated CUDA.
#[derive(Copy, Clone, ValueEnum)]
pub enum GemmMathArg {
    /// f32 FMA on CUDA cores.
    Simt,
    /// TF32 tensor cores (sm_80 and newer), f32 accumulation.
    Tf32,
    /// BF16 tensor cores (sm_80 and newer), f32 accumulation.
    Bf16,
}

impl OptArgs {
    pub(crate) fn options(&self) -> pigeon::passes::Options {
        if self.level == 0 {
            return pigeon::passes::Options::none();
        }
        pigeon::passes::Options {
            reorder: !self.no_reorder,
            compact: !self.no_compact,
            fuse: !self.no_fuse,
        }
    }
    fn codegen_options(&self) -> pigeon::codegen::Options {
        let gemm_math = match self.gemm_math {
            GemmMathArg::Simt => pigeon::codegen::GemmMath::Simt,
            GemmMathArg::Tf32 => pigeon::codegen::GemmMath::Tf32,
            GemmMathArg::Bf16 => pigeon::codegen::GemmMath::Bf16,
        };
        pigeon::codegen::Options { gemm_math }
    }
    pub(crate) fn precision_name(&self) -> &'static str {
        match self.precision {
            PrecisionArg::F32 => "f32",
            PrecisionArg::F64 => "f64",
        }
    }
    pub(crate) fn precision(&self) -> runtime::cpu::Precision {
        match self.precision {
            PrecisionArg::F32 => runtime::cpu::Precision::F32,
            PrecisionArg::F64 => runtime::cpu::Precision::F64,
        }
    }
}

/// Arithmetic precision of the CPU back end.
#[derive(Copy, Clone, ValueEnum)]
pub enum PrecisionArg {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum Stage {
    /// The syntax tree.
    Ast,
    /// The inter-operator IR as the frontend lowers it.
    Inter,
    /// The inter-operator IR after the optimising passes.
    Opt,
    /// The kernel plan.
    Plan,
    /// The backward module of the differentiated model (gradients of every weight), after
    /// the list of forward values it reads and their f32 bytes on the graph. With `--graph`,
    /// as compiled for that graph (saved values the forward computes on compact rows are
    /// saved as those rows).
    Backward,
    /// The kernel plans of a training step: the forward plan (outputs and saved values), then
    /// the backward plan, compiled for the graph as `pigeon bench --train` runs them.
    TrainPlans,
}

#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum Format {
    /// The text form.
    Text,
    /// Graphviz dot (inter stage only).
    Dot,
}

fn parse_param(s: &str) -> Result<(String, i64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let v: i64 = v.trim().parse().map_err(|_| format!("`{v}` is not an integer"))?;
    Ok((k.trim().to_string(), v))
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Diagnostics are already fully rendered; other errors get a prefix and their causes.
            match e.downcast_ref::<pigeon::Error>() {
                Some(pigeon::Error::Diagnostics { rendered, count }) => {
                    eprint!("{rendered}");
                    eprintln!("error: {count} error{} found", if *count == 1 { "" } else { "s" });
                }
                _ => eprintln!("error: {}", error_chain(&e)),
            }
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed pipe end the process like other command-line tools do (Rust ignores SIGPIPE,
/// so `println!` into a closed pipe would panic).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message already
/// holds (runtime errors include their I/O cause; anyhow's `{:#}` would print it twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
    }
    out
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Check { file } => check(&file),
        Command::Dump { file, stage, format, model, opt, after, graph } => {
            let request = DumpRequest { stage, format, after, graph };
            dump(&file, &request, &model, &opt)
        }
        Command::Run {
            file,
            graph,
            backend,
            model,
            opt,
            check,
            seed,
            weights,
            save_weights,
            output,
            save_inputs,
        } => {
            let opts =
                RunOptions { seed, weights, save_weights, output, save_inputs, check, backend };
            run::run(&file, &graph, &model, &opt, &opts)
        }
        Command::Bench(args) => bench::bench(&args),
        Command::Train(args) => train_cli::train(&args),
        Command::Eval(args) => train_cli::eval(&args),
        Command::Grad(args) => grad_cli::grad(&args),
        Command::Compile(args) => compile::compile(&args),
        Command::Graph { command: GraphCommand::Info { spec } } => {
            let graph = load_graph(&spec)?;
            println!("{graph}");
            Ok(())
        }
        Command::Graph { command: GraphCommand::Export { spec, output } } => {
            runtime::io::check_writable(&output)?;
            let graph = load_graph(&spec)?;
            runtime::io::write_atomic(&output, &runtime::export::graph_to_safetensors(&graph)?)?;
            println!(
                "wrote {} ({} nodes, {} edges)",
                output.display(),
                graph.num_nodes(),
                graph.num_edges()
            );
            Ok(())
        }
    }
}

fn check(file: &Path) -> Result<()> {
    let src = pigeon::read_source(file)?;
    pigeon::frontend::check(&src).map_err(|d| pigeon::diagnostics_error(&src, &d))?;
    let names =
        pigeon::frontend::model_names(&src).map_err(|d| pigeon::diagnostics_error(&src, &d))?;
    println!(
        "ok: {} ({} model{}: {})",
        src.name,
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    Ok(())
}

struct DumpRequest {
    stage: Stage,
    format: Format,
    after: Option<String>,
    graph: Option<String>,
}

fn dump(file: &Path, req: &DumpRequest, model: &ModelArgs, opt: &OptArgs) -> Result<()> {
    let src = pigeon::read_source(file)?;
    if req.format == Format::Dot
        && !matches!(req.stage, Stage::Inter | Stage::Opt | Stage::Backward)
    {
        bail!("--format dot is available for --stage inter, opt and backward");
    }
    if req.after.is_some() && !matches!(req.stage, Stage::Opt | Stage::Plan) {
        bail!("--after applies to --stage opt and --stage plan");
    }
    let print_module = |m: &pigeon::ir::Module| match req.format {
        Format::Text => print!("{}", pigeon::ir::text::print(m)),
        Format::Dot => print!("{}", pigeon::ir::dot::to_dot(m)),
    };
    match req.stage {
        Stage::Ast => {
            let ast =
                pigeon::frontend::parse(&src).map_err(|d| pigeon::diagnostics_error(&src, &d))?;
            print!("{}", pigeon::frontend::ast_to_string(&ast));
        }
        Stage::Inter => {
            print_module(&pigeon::compile(&src, model.model.as_deref(), &model.params)?)
        }
        Stage::Backward => {
            let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
            let grads = pigeon::train::Gradients::new(&module, &[])?;
            // On a graph, the modules the training plans implement: saved values the optimised
            // forward computes on compact rows are saved as those rows.
            let (grads, stats) = match &req.graph {
                Some(spec) => {
                    let graph = load_graph(spec)?;
                    let backend = Box::new(runtime::cpu::CpuBackend::default());
                    let stats = runtime::layout::graph_stats(&graph);
                    (grads.compile(&graph, &opt.options(), backend)?, stats)
                }
                None => (grads, pigeon::default_stats()),
            };
            if req.format == Format::Text {
                for (saved, bytes) in grads.saved(&stats) {
                    let bytes = runtime::memory::human(bytes as u128);
                    println!(
                        "// saved {} = forward {} : {} ({bytes})",
                        saved.name, saved.value, saved.ty
                    );
                }
            }
            print_module(grads.modules().1);
        }
        Stage::TrainPlans => {
            let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
            let graph = match &req.graph {
                Some(spec) => load_graph(spec)?,
                None => bail!("--stage train-plans needs --graph"),
            };
            let backend = Box::new(runtime::cpu::CpuBackend::default());
            let grads = pigeon::train::Gradients::new(&module, &[])?.compile(
                &graph,
                &opt.options(),
                backend,
            )?;
            let (forward, backward) = grads
                .plans()
                .ok_or_else(|| anyhow::anyhow!("the training step was not compiled"))?;
            println!("// forward plan");
            print!("{}", pigeon::ir::plan_text::print_plan(forward));
            println!("\n// backward plan");
            print!("{}", pigeon::ir::plan_text::print_plan(backward));
        }
        Stage::Opt | Stage::Plan => {
            let (stats, origin) = match &req.graph {
                Some(spec) => (runtime::layout::graph_stats(&load_graph(spec)?), spec.clone()),
                None => (pigeon::default_stats(), "default sizes (AIFB-like; pass --graph)".into()),
            };
            let (_, compiled) = pigeon::compile_plan(
                &src,
                model.model.as_deref(),
                &model.params,
                &stats,
                &opt.options(),
                req.after.as_deref(),
            )?;
            if req.format == Format::Text {
                println!(
                    "// sizes: {origin}: {} nodes, {} edges, {} relations",
                    stats.nodes, stats.edges, stats.relations
                );
                for (pass, report) in &compiled.reports {
                    for line in report.lines() {
                        println!("// {pass}: {line}");
                    }
                }
            }
            match (req.stage, &compiled.plan) {
                (Stage::Plan, Some(plan)) => print!("{}", pigeon::ir::plan_text::print_plan(plan)),
                (Stage::Plan, None) => bail!(
                    "the pipeline stopped after `{}`, before there is a plan; use --stage opt",
                    req.after.as_deref().unwrap_or("?")
                ),
                _ => print_module(&compiled.module),
            }
        }
    }
    Ok(())
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn load_graph(spec: &str) -> Result<HeteroGraph> {
    let bar = spinner(format!("loading {spec}"));
    let graph = runtime::load_graph(spec);
    bar.finish_and_clear();
    Ok(graph?)
}
