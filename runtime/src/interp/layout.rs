//! The graph layouts the interpreter needs: compact tables and incoming edges grouped by
//! destination (then relation).
//!
//! A [`CompactTable`] for endpoint `src` has one row per unique (source node, relation) pair
//! among the edges, rows sorted by (relation, node), with per-relation offsets and, for each
//! edge, the row it maps to; likewise for `dst`. [`InEdges`] lists the edges sorted by
//! (destination, relation, edge id) with per-destination offsets, so that softmax and
//! aggregation visit each destination's incoming edges (and each (destination, relation) group)
//! as one contiguous run: O(E) work per operator after one O(E log E) sort.
//!
//! Both assume a graph that passed `validate_graph`.

use crate::graph::HeteroGraph;
use pigeon_ir::Endpoint;

/// Unique (node, relation) pairs of one endpoint, and each edge's row among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactTable {
    /// The endpoint whose node keys the rows.
    pub endpoint: Endpoint,
    /// The node of each row.
    pub node: Vec<u32>,
    /// The relation of each row.
    pub rel: Vec<u32>,
    /// `R + 1` offsets: rows of relation `r` are `rel_offsets[r]..rel_offsets[r + 1]`.
    pub rel_offsets: Vec<usize>,
    /// The row of each edge.
    pub edge_row: Vec<u32>,
}

impl CompactTable {
    /// Builds the table of `endpoint` for `graph`.
    pub fn build(graph: &HeteroGraph, endpoint: Endpoint) -> Self {
        let nodes = match endpoint {
            Endpoint::Src => &graph.src,
            Endpoint::Dst => &graph.dst,
        };
        let mut keyed: Vec<(u32, u32, usize)> =
            nodes.iter().zip(&graph.rel).enumerate().map(|(e, (&n, &r))| (r, n, e)).collect();
        keyed.sort_unstable();
        let mut table = CompactTable {
            endpoint,
            node: Vec::new(),
            rel: Vec::new(),
            rel_offsets: vec![0; graph.num_relations() + 1],
            edge_row: vec![0; nodes.len()],
        };
        for (i, &(r, n, e)) in keyed.iter().enumerate() {
            let new_row = i == 0 || (keyed[i - 1].0, keyed[i - 1].1) != (r, n);
            if new_row {
                table.node.push(n);
                table.rel.push(r);
                table.rel_offsets[r as usize + 1] += 1;
            }
            table.edge_row[e] = (table.node.len() - 1) as u32;
        }
        for r in 0..graph.num_relations() {
            table.rel_offsets[r + 1] += table.rel_offsets[r];
        }
        table
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.node.len()
    }

    /// Whether the graph has no edge.
    pub fn is_empty(&self) -> bool {
        self.node.is_empty()
    }
}

/// Edges sorted by (destination, relation, id), with per-destination offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InEdges {
    /// Edge ids in (destination, relation, id) order.
    pub order: Vec<u32>,
    /// `N + 1` offsets: the incoming edges of node `v` are `order[offsets[v]..offsets[v + 1]]`.
    pub offsets: Vec<usize>,
}

impl InEdges {
    /// Builds the grouping for `graph`.
    pub fn build(graph: &HeteroGraph) -> Self {
        let mut order: Vec<u32> = (0..graph.num_edges() as u32).collect();
        order.sort_unstable_by_key(|&e| (graph.dst[e as usize], graph.rel[e as usize], e));
        let mut offsets = vec![0usize; graph.num_nodes() + 1];
        for &d in &graph.dst {
            offsets[d as usize + 1] += 1;
        }
        for v in 0..graph.num_nodes() {
            offsets[v + 1] += offsets[v];
        }
        Self { order, offsets }
    }

    /// The incoming edges of node `v`, sorted by (relation, id).
    pub fn of(&self, v: usize) -> &[u32] {
        &self.order[self.offsets[v]..self.offsets[v + 1]]
    }
}
