//! pigeon's runtime: heterogeneous graphs and loaders, tensors, the reference interpreter.

pub mod backend;
pub mod bind;
pub mod cpu;
pub mod cuda;
pub mod error;
pub mod export;
pub mod graph;
pub mod interp;
pub mod io;
pub mod layout;
pub mod linkpred;
pub mod loaders;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod rng;
mod segments;
pub mod spec;
pub mod tensor;
mod values;
pub mod weights;

pub use bind::{bind_inputs, BindingNote, BindingSource};
pub use error::{Result, RuntimeError};
pub use graph::HeteroGraph;
pub use interp::interpret;
pub use spec::{load_graph, GraphSpec};
pub use tensor::Tensor;
pub use weights::WeightStore;
