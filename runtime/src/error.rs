//! The runtime's one error type. Variants keep user errors (bad files, bad specs, mismatched
//! weights), unsupported requests and internal bugs apart; each carries the context needed to
//! render a useful message without the caller adding any.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a dataset file is malformed (bad column count, bad number, unknown name,
    /// out-of-range id).
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A graph spec (`rdf:PATH`, `synthetic:nodes=...`) is malformed.
    #[error("bad graph spec `{spec}`: {message}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A graph is inconsistent (an edge names a node or relation that does not exist).
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    /// A model input cannot be bound (missing, or the graph provides another shape).
    #[error("input `{name}`: {message}")]
    Binding {
        /// The input's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Weights loaded from a file do not match the model (missing, extra, wrong shape, bad file).
    #[error("weights: {0}")]
    Weights(String),
    /// A request would need more memory than the machine has (a model, graph or value too
    /// large); checked before allocating.
    #[error("{what} needs {}, more than {}", crate::memory::human(*bytes), limit_text(*limit))]
    TooLarge {
        /// What would be allocated (`weight \`W\` (3 x [65536, 32768] f64)`).
        what: String,
        /// The bytes it needs.
        bytes: u128,
        /// The memory available, when known.
        limit: Option<u64>,
    },
    /// No usable GPU: the driver library is missing, no device exists, the ordinal is out of
    /// range, or pigeon was built without the `cuda` feature (the reason says which).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// The plan does not fit in the GPU's free memory (checked before allocating anything);
    /// `detail` lists the biggest items.
    #[error(
        "the plan needs {} of GPU memory, but only {} is free; biggest items: {detail}",
        crate::memory::human(*needed as u128),
        crate::memory::human(*available as u128)
    )]
    DeviceMemory {
        /// Bytes the execution would allocate.
        needed: usize,
        /// Bytes free on the device.
        available: usize,
        /// The largest items and their sizes.
        detail: String,
    },
    /// NVRTC rejected CUDA source: its log and the numbered source lines around the first
    /// error.
    #[error("NVRTC could not compile the CUDA source:\n{log}\n{excerpt}")]
    Nvrtc {
        /// NVRTC's compilation log.
        log: String,
        /// Numbered source lines around the first error (empty when no line is named).
        excerpt: String,
    },
    /// A CUDA driver call failed (the message names the call and the driver's error).
    #[error("CUDA: {0}")]
    Cuda(String),
    /// The request is valid but not supported yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An invariant of the IR was broken: a bug in pigeon, not in the input.
    #[error("internal error (a bug in pigeon): {0}")]
    Internal(String),
}

impl From<pigeon_codegen::CodegenError> for RuntimeError {
    fn from(e: pigeon_codegen::CodegenError) -> Self {
        match e {
            pigeon_codegen::CodegenError::Unsupported(m) => {
                RuntimeError::Unsupported(format!("the CUDA back end does not support {m}"))
            }
            pigeon_codegen::CodegenError::Internal(m) => {
                RuntimeError::Internal(format!("CUDA generation: {m}"))
            }
        }
    }
}

/// Result with [`RuntimeError`].
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

fn limit_text(limit: Option<u64>) -> String {
    match limit {
        Some(l) => format!("the {} of memory available", crate::memory::human(u128::from(l))),
        None => "any address space holds".to_string(),
    }
}
