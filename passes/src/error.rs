//! The optimiser's one error type.

/// What can go wrong in a pass.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// `--after` named no pass of the pipeline.
    #[error("no pass named `{name}`; the pipeline is: {pipeline}")]
    UnknownPass {
        /// The name given.
        name: String,
        /// The pipeline's pass names.
        pipeline: String,
    },
    /// The model uses something the optimiser or a back end cannot handle yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A pass produced IR that does not verify, or met IR it did not expect: a bug in pigeon.
    #[error("internal error in pass `{pass}` (a bug in pigeon): {message}")]
    Internal {
        /// The pass.
        pass: &'static str,
        /// What went wrong.
        message: String,
    },
}
