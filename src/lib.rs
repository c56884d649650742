//! pigeon: a compiler for relational graph neural networks.
//!
//! This crate is the facade that ties the frontend, IR, passes, code generation and runtime
//! together, and holds the `pigeon` command-line interface (in `main.rs`). The library never
//! prints or exits; it returns [`Error`] values the CLI renders.

pub use pigeon_codegen as codegen;
pub use pigeon_frontend as frontend;
pub use pigeon_ir as ir;
pub use pigeon_passes as passes;
pub use pigeon_runtime as runtime;

pub mod build;
pub mod train;

use std::path::Path;

/// Errors of the facade: a model that does not compile, or a runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The model has errors; `rendered` holds every diagnostic with its source line and caret.
    #[error("{rendered}")]
    Diagnostics {
        /// The rendered diagnostics.
        rendered: String,
        /// How many errors.
        count: usize,
    },
    /// The lowered IR failed verification: a bug in pigeon.
    #[error("internal error (a bug in pigeon): the IR does not verify:\n{0}")]
    Verify(String),
    /// A runtime failure (graph loading, binding, interpretation, weights).
    #[error(transparent)]
    Runtime(#[from] pigeon_runtime::RuntimeError),
    /// The optimiser failed (an unknown `--after` pass, an unsupported construct, or a bug).
    #[error(transparent)]
    Pass(#[from] pigeon_passes::PassError),
    /// CUDA generation failed (an unsupported plan, or a bug).
    #[error(transparent)]
    Codegen(#[from] pigeon_codegen::CodegenError),
}

/// Reads a model file.
pub fn read_source(path: &Path) -> Result<frontend::SourceFile, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Read { path: path.display().to_string(), source })?;
    Ok(frontend::SourceFile { name: path.display().to_string(), text })
}

/// Turns frontend diagnostics into an [`Error`] carrying their rendering.
pub fn diagnostics_error(src: &frontend::SourceFile, d: &frontend::Diagnostics) -> Error {
    Error::Diagnostics { rendered: d.render(&src.name, &src.text), count: d.0.len() }
}

/// Compiles one model of `src` to the verified inter-operator IR.
pub fn compile(
    src: &frontend::SourceFile,
    model: Option<&str>,
    params: &[(String, i64)],
) -> Result<ir::Module, Error> {
    let module = frontend::compile(src, model, params).map_err(|d| diagnostics_error(src, &d))?;
    verify(&module)?;
    Ok(module)
}

/// Runs the IR verifier, turning its findings into [`Error::Verify`].
pub fn verify(module: &ir::Module) -> Result<(), Error> {
    ir::verify::verify(module).map_err(|errors| {
        Error::Verify(errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))
    })
}

/// The graph sizes assumed when a plan is made without a graph (`pigeon dump --stage plan`
/// without `--graph`): an AIFB-like graph with inverse relations and self-loops.
pub fn default_stats() -> ir::GraphStats {
    ir::GraphStats {
        nodes: 8_285,
        edges: 66_371,
        relations: 91,
        node_types: 1,
        compact_src_rows: 30_000,
        compact_dst_rows: 30_000,
        max_in_degree: 1_248,
        // A plan made without a graph must run on untyped graphs too.
        typed_relations: false,
    }
}

/// Compiles one model of `src` and runs the optimisation pipeline for a graph of sizes
/// `stats`, stopping after pass `after` when given.
pub fn compile_plan(
    src: &frontend::SourceFile,
    model: Option<&str>,
    params: &[(String, i64)],
    stats: &ir::GraphStats,
    options: &passes::Options,
    after: Option<&str>,
) -> Result<(ir::Module, passes::Compiled), Error> {
    let module = compile(src, model, params)?;
    let compiled = passes::compile(&module, stats, options, after)?;
    Ok((module, compiled))
}
