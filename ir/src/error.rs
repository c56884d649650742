//! The IR crate's one error type: text that does not parse, operators whose operands do not fit,
//! and modules that break the verifier's invariants.

use crate::inter::ValueId;
use crate::verify::VerifyError;

/// Everything that can go wrong when reading, building or checking an inter-operator IR module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrError {
    /// The text form does not parse, or parses into a module that breaks an invariant (then the
    /// position is that of the offending statement).
    #[error("{line}:{col}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// 1-based column, in characters.
        col: usize,
        /// What was expected and what was found, or which invariant is broken.
        message: String,
    },
    /// An operator built with [`ModuleBuilder`](crate::builder::ModuleBuilder) does not type:
    /// its operands do not fit (the message is [`infer_type`](crate::infer::infer_type)'s).
    #[error("{value}: {message}")]
    Type {
        /// The value the instruction would have defined.
        value: ValueId,
        /// Why the operands do not fit.
        message: String,
    },
    /// A module breaks one or more of the verifier's invariants; every violation is listed.
    #[error("invalid module: {}", join(.0))]
    Invalid(Vec<VerifyError>),
}

fn join(errors: &[VerifyError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}
