//! pigeon's code generation: CUDA C for the GEMM and traversal templates (not yet written; see
//! the CUDA back-end issue). The crate exists so the workspace has its final shape.
