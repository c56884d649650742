//! The `pigeon` command-line interface: parses arguments, calls the library, renders results
//! and errors. The only place in the workspace that prints or exits.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pigeon::runtime::{self, HeteroGraph};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod bench;

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
        /// The executor.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opt: OptArgs,
        /// Also run the reference interpreter, report the largest difference, and fail when it
        /// exceeds 1e-4 (f32) or 1e-9 (f64) of the output's largest magnitude.
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
struct ModelArgs {
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
}

impl OptArgs {
    fn options(&self) -> pigeon::passes::Options {
        if self.level == 0 {
            return pigeon::passes::Options::none();
        }
        pigeon::passes::Options {
            reorder: !self.no_reorder,
            compact: !self.no_compact,
            fuse: !self.no_fuse,
        }
    }
    fn precision(&self) -> runtime::cpu::Precision {
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
}

#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum Format {
    /// The text form.
    Text,
    /// Graphviz dot (inter stage only).
    Dot,
}

#[derive(Copy, Clone, ValueEnum, PartialEq)]
enum Backend {
    /// The f64 reference interpreter of the inter-operator IR (the oracle).
    Reference,
    /// The optimised CPU back end (rayon, matrixmultiply).
    Cpu,
    /// The CUDA executor (not written yet).
    Cuda,
}

fn parse_param(s: &str) -> Result<(String, i64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    let v: i64 = v.trim().parse().map_err(|_| format!("`{v}` is not an integer"))?;
    Ok((k.trim().to_string(), v))
}

fn main() -> ExitCode {
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
            let opts = RunOptions { seed, weights, save_weights, output, save_inputs, check };
            run(&file, &graph, backend, &model, &opt, &opts)
        }
        Command::Bench(args) => bench::bench(&args),
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
    if req.format == Format::Dot && !matches!(req.stage, Stage::Inter | Stage::Opt) {
        bail!("--format dot is available for --stage inter and --stage opt");
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

struct RunOptions {
    seed: u64,
    weights: Option<PathBuf>,
    save_weights: Option<PathBuf>,
    output: Option<PathBuf>,
    save_inputs: Option<PathBuf>,
    check: bool,
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

fn run(
    file: &Path,
    spec: &str,
    backend: Backend,
    model: &ModelArgs,
    opt: &OptArgs,
    opts: &RunOptions,
) -> Result<()> {
    if backend == Backend::Cuda {
        bail!("the CUDA back end is not written yet (issue #4); use --backend cpu or reference");
    }
    // Refuse unwritable destinations before the (possibly long) run, not after it.
    for path in [&opts.output, &opts.save_weights, &opts.save_inputs].into_iter().flatten() {
        runtime::io::check_writable(path)?;
    }
    let t0 = Instant::now();
    let src = pigeon::read_source(file)?;
    let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
    let t_compile = t0.elapsed();

    let t1 = Instant::now();
    let graph = load_graph(spec)?;
    let t_load = t1.elapsed();

    let (r, t) = (graph.num_relations(), graph.num_node_types());
    let weights = match &opts.weights {
        // The runtime's error already names the file.
        Some(path) => runtime::weights::WeightStore::load(path, &module, r, t)?,
        None => runtime::weights::WeightStore::try_init(&module, r, t, opts.seed)?,
    };
    if let Some(path) = &opts.save_weights {
        weights.save(path, &module)?;
    }
    let (inputs, notes) = runtime::bind::bind_inputs(&module, &graph, opts.seed)?;
    if let Some(path) = &opts.save_inputs {
        runtime::weights::save_tensors(path, &inputs)?;
    }

    let what = if backend == Backend::Cpu { "cpu" } else { "reference" };
    let bar = spinner(format!("running {} on {} ({what})", module.name, graph.name));
    let t2 = Instant::now();
    let outputs = match backend {
        Backend::Cpu => {
            use runtime::backend::Backend as _;
            let stats = runtime::layout::graph_stats(&graph);
            let compiled = pigeon::passes::compile(&module, &stats, &opt.options(), None)?;
            let plan =
                compiled.plan.ok_or_else(|| anyhow::anyhow!("the pipeline produced no plan"))?;
            runtime::cpu::CpuBackend::new(opt.precision())
                .execute(&plan, &graph, &inputs, &weights)
                .map(|e| e.outputs)
        }
        _ => runtime::interp::interpret(&module, &graph, &inputs, &weights),
    };
    let t_run = t2.elapsed();
    bar.finish_and_clear();
    let outputs = outputs?;
    let check = if opts.check && backend != Backend::Reference {
        let want = runtime::interp::interpret(&module, &graph, &inputs, &weights)?;
        Some(max_relative_difference(&outputs, &want))
    } else {
        None
    };

    println!("model     {} ({})", module.name, params_text(&module));
    println!(
        "graph     {}: {} nodes, {} edges, {} relation{}, {} node type{}",
        graph.name,
        graph.num_nodes(),
        graph.num_edges(),
        r,
        plural(r),
        t,
        plural(t)
    );
    for note in &notes {
        println!("input     {note}");
    }
    for (name, tensor) in &outputs {
        println!(
            "output    {name}: {} x {} {}, sum {:.6e}, sum|x| {:.6e}",
            tensor.rows,
            tensor.shape,
            if backend == Backend::Cpu { opt_precision_name(opt) } else { "f64" },
            tensor.sum(),
            tensor.sum_abs()
        );
    }
    println!(
        "time      compile {:.1} ms, load {:.1} ms, run {:.1} ms ({what}, including planning)",
        ms(t_compile),
        ms(t_load),
        ms(t_run)
    );
    if let Some(diff) = check {
        println!("check     largest difference from the reference interpreter: {diff:.3e} (relative to the output's largest magnitude)");
        // f32 through a few chained products of width <= a few hundred stays well inside 1e-4.
        let tolerance = if opt_precision_name(opt) == "f32" { 1e-4 } else { 1e-9 };
        if diff > tolerance {
            bail!("the {what} back end differs from the reference interpreter by {diff:.3e}, more than {tolerance:e}");
        }
    }
    if let Some(path) = &opts.output {
        runtime::weights::save_tensors(path, &outputs)?;
        println!("wrote     {}", path.display());
    }
    Ok(())
}

fn opt_precision_name(opt: &OptArgs) -> &'static str {
    match opt.precision {
        PrecisionArg::F32 => "f32",
        PrecisionArg::F64 => "f64",
    }
}

/// The largest absolute difference between two sets of outputs, relative to the largest
/// magnitude of the reference.
fn max_relative_difference(
    got: &[(String, runtime::tensor::Tensor)],
    want: &[(String, runtime::tensor::Tensor)],
) -> f64 {
    let mut worst = 0.0f64;
    for ((_, g), (_, w)) in got.iter().zip(want) {
        let scale = w.data.iter().fold(f64::MIN_POSITIVE, |m, x| m.max(x.abs()));
        for (a, b) in g.data.iter().zip(&w.data) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    worst
}

fn params_text(module: &pigeon::ir::Module) -> String {
    let parts: Vec<String> = module.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    parts.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
