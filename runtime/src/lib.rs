//! pigeon's runtime: heterogeneous graphs and loaders, tensors, the reference interpreter.

pub mod error;
pub mod graph;
pub mod rng;

pub use error::{Result, RuntimeError};
pub use graph::HeteroGraph;
