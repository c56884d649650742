//! The `pigeon` command-line interface: parses arguments, calls the library, renders results
//! and errors. The only place in the workspace that prints or exits.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pigeon::runtime::{self, HeteroGraph};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
        #[arg(long, value_enum, default_value = "reference")]
        backend: Backend,
        #[command(flatten)]
        model: ModelArgs,
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

#[derive(Copy, Clone, ValueEnum)]
enum Stage {
    /// The syntax tree.
    Ast,
    /// The inter-operator IR.
    Inter,
}

#[derive(Copy, Clone, ValueEnum)]
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
    /// The optimised CPU executor (not written yet).
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
        Command::Dump { file, stage, format, model } => dump(&file, stage, format, &model),
        Command::Run {
            file,
            graph,
            backend,
            model,
            seed,
            weights,
            save_weights,
            output,
            save_inputs,
        } => {
            let opts = RunOptions { seed, weights, save_weights, output, save_inputs };
            run(&file, &graph, backend, &model, &opts)
        }
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

fn dump(file: &Path, stage: Stage, format: Format, model: &ModelArgs) -> Result<()> {
    let src = pigeon::read_source(file)?;
    match (stage, format) {
        (Stage::Ast, Format::Text) => {
            let ast =
                pigeon::frontend::parse(&src).map_err(|d| pigeon::diagnostics_error(&src, &d))?;
            print!("{}", pigeon::frontend::ast_to_string(&ast));
        }
        (Stage::Ast, Format::Dot) => bail!("--format dot is available for --stage inter"),
        (Stage::Inter, format) => {
            let module = pigeon::compile(&src, model.model.as_deref(), &model.params)?;
            match format {
                Format::Text => print!("{}", pigeon::ir::text::print(&module)),
                Format::Dot => print!("{}", pigeon::ir::dot::to_dot(&module)),
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
    opts: &RunOptions,
) -> Result<()> {
    if backend != Backend::Reference {
        bail!("this back end is not implemented yet; use --backend reference (the optimised CPU and CUDA back ends are issues #3 and #4)");
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

    let bar = spinner(format!("running {} on {} (reference interpreter)", module.name, graph.name));
    let t2 = Instant::now();
    let outputs = runtime::interp::interpret(&module, &graph, &inputs, &weights);
    let t_run = t2.elapsed();
    bar.finish_and_clear();
    let outputs = outputs?;

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
            "output    {name}: {} x {} f64, sum {:.6e}, sum|x| {:.6e}",
            tensor.rows,
            tensor.shape,
            tensor.sum(),
            tensor.sum_abs()
        );
    }
    println!(
        "time      compile {:.1} ms, load {:.1} ms, run {:.1} ms (reference)",
        ms(t_compile),
        ms(t_load),
        ms(t_run)
    );
    if let Some(path) = &opts.output {
        runtime::weights::save_tensors(path, &outputs)?;
        println!("wrote     {}", path.display());
    }
    Ok(())
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
