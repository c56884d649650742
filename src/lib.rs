//! pigeon: a compiler for relational graph neural networks. This crate is the facade that ties
//! the frontend, IR, passes, code generation and runtime together.

pub use pigeon_frontend as frontend;
pub use pigeon_ir as ir;
pub use pigeon_passes as passes;
pub use pigeon_runtime as runtime;
