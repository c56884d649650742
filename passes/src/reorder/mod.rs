//! The machinery of the linear-operator reordering pass (`reorder_linear.rs`): the e-graph
//! language and typing analysis, the rewrite table, the cost model, extraction, and the
//! conversion between modules and e-graphs.

pub(crate) mod convert;
pub(crate) mod cost;
pub(crate) mod extract;
pub(crate) mod lang;
pub(crate) mod rules;
