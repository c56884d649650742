//! The code generator's one error enum.

use thiserror::Error;

/// Why a plan could not be turned into CUDA.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CodegenError {
    /// The plan uses something the CUDA templates do not implement yet (a message says what).
    #[error("the CUDA back end does not support {0}")]
    Unsupported(String),
    /// The plan is inconsistent (a bug in an earlier pass; the plan verifier should catch it).
    #[error("internal error in CUDA generation: {0}")]
    Internal(String),
}

/// Result with [`CodegenError`].
pub type Result<T> = std::result::Result<T, CodegenError>;

/// Shorthand for an internal error.
pub(crate) fn internal(m: impl Into<String>) -> CodegenError {
    CodegenError::Internal(m.into())
}

/// Shorthand for an unsupported feature.
pub(crate) fn unsupported(m: impl Into<String>) -> CodegenError {
    CodegenError::Unsupported(m.into())
}
