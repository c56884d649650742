//! Sizes of the graph a model will run on, as the optimiser's cost model sees them. Computed
//! by the runtime from a loaded graph (`pigeon_runtime::layout::graph_stats`), or made up in
//! tests to show how decisions depend on the graph.

/// The graph sizes that drive cost-based decisions (reordering, compaction, schedules).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GraphStats {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of edges.
    pub edges: usize,
    /// Number of relations.
    pub relations: usize,
    /// Number of node types.
    pub node_types: usize,
    /// Unique (source node, relation) pairs among the edges.
    pub compact_src_rows: usize,
    /// Unique (destination node, relation) pairs among the edges.
    pub compact_dst_rows: usize,
    /// Largest in-degree.
    pub max_in_degree: usize,
    /// Whether every relation declares the node types of both its endpoints (so a relation
    /// row may select a node-type weight by `src.ntype` or `dst.ntype`; reordering uses it to
    /// fold a node-type weight into a relation weight).
    pub typed_relations: bool,
}

impl GraphStats {
    /// Number of rows of a row domain on this graph.
    pub fn rows(&self, domain: crate::Domain) -> usize {
        use crate::{Domain, Endpoint};
        match domain {
            Domain::Node => self.nodes,
            Domain::Edge => self.edges,
            Domain::Compact(Endpoint::Src) => self.compact_src_rows,
            Domain::Compact(Endpoint::Dst) => self.compact_dst_rows,
            Domain::Shared => 1,
            Domain::Relation => self.relations,
            Domain::NodeType => self.node_types,
        }
    }
}
