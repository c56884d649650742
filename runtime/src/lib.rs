//! pigeon's runtime: heterogeneous graphs and loaders, tensors, the reference interpreter.

pub mod graph;
