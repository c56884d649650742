//! Graph layouts for the kernels of a plan (`pigeon_ir::plan::Layout`), built on demand, and
//! the graph statistics the optimiser's cost model reads ([`graph_stats`]).
//!
//! - [`EdgesByRelation`]: edge ids sorted by (relation, destination, edge id), with
//!   per-relation offsets (the segmentation of the R-GCN GEMM);
//! - [`InCsr`]: incoming edges grouped by destination, each group in edge order (the
//!   node-parallel traversal's CSR);
//! - [`CompactTable`]: the unique (node, relation) pairs of one endpoint, sorted by (relation,
//!   node), with per-relation offsets, each edge's row, and each row's node and relation.
//!
//! Every layout is built with stable counting sorts, in O(E + N + R); independent layouts are
//! built in parallel. [`Layouts::build`] validates the graph's ids first, so the tables only
//! hold ids that are in range.
//!
//! The reference interpreter keeps its own, simpler versions of the compact table and of the
//! incoming-edge grouping (`interp::layout`); the two should be unified once both settle.

use crate::error::Result;
use crate::graph::HeteroGraph;
use crate::interp::validate_graph;
use pigeon_ir::plan::Layout;
use pigeon_ir::{Endpoint, GraphStats};

/// Edge ids sorted by (relation, destination, edge id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgesByRelation {
    /// The sorted edge ids.
    pub order: Vec<u32>,
    /// `R + 1` offsets: the edges of relation `r` are `order[offsets[r]..offsets[r + 1]]`.
    pub offsets: Vec<usize>,
}

/// Incoming edges grouped by destination, in edge order within each group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InCsr {
    /// `N + 1` offsets: the incoming edges of node `v` are `edges[offsets[v]..offsets[v + 1]]`.
    pub offsets: Vec<usize>,
    /// Edge ids, grouped by destination.
    pub edges: Vec<u32>,
}

impl InCsr {
    /// The incoming edges of node `v` (empty for a node id out of range).
    pub fn of(&self, v: usize) -> &[u32] {
        match (self.offsets.get(v), self.offsets.get(v + 1)) {
            (Some(&a), Some(&b)) => &self.edges[a..b],
            _ => &[],
        }
    }
}

/// The unique (node, relation) pairs of one endpoint among the edges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactTable {
    /// The endpoint whose node keys the rows.
    pub endpoint: Endpoint,
    /// The node of each row (rows sorted by (relation, node)).
    pub node: Vec<u32>,
    /// The relation of each row.
    pub rel: Vec<u32>,
    /// `R + 1` offsets: the rows of relation `r` are `rel_offsets[r]..rel_offsets[r + 1]`.
    pub rel_offsets: Vec<usize>,
    /// The row of each edge.
    pub edge_row: Vec<u32>,
    /// The edges grouped by row: those of row `i` are
    /// `row_edges[row_offsets[i]..row_offsets[i + 1]]` (a CSR from rows to edges, the inverse
    /// of `edge_row`, for summing edge rows into compact rows without atomics).
    pub row_edges: Vec<u32>,
    /// `len() + 1` offsets into `row_edges`.
    pub row_offsets: Vec<usize>,
}

impl CompactTable {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.node.len()
    }
    /// Whether there is no row (the graph has no edge).
    pub fn is_empty(&self) -> bool {
        self.node.is_empty()
    }
}

/// The layouts of one graph that a plan asked for, plus each node's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layouts {
    /// The type of each node.
    pub node_type: Vec<u32>,
    by_relation: Option<EdgesByRelation>,
    in_csr: Option<InCsr>,
    compact: [Option<CompactTable>; 2],
}

fn ep_index(ep: Endpoint) -> usize {
    match ep {
        Endpoint::Src => 0,
        Endpoint::Dst => 1,
    }
}

impl Layouts {
    /// Validates `graph`'s ids, then builds the listed layouts (each once, in parallel).
    /// `NodesByType` needs no table: pigeon graphs are grouped by type already.
    pub fn build(graph: &HeteroGraph, wanted: &[Layout]) -> Result<Self> {
        validate_graph(graph)?;
        let want = |l: Layout| wanted.contains(&l);
        let ((node_type, by_relation), (in_csr, (src, dst))) = rayon::join(
            || {
                rayon::join(
                    || graph.node_type_ids(),
                    || want(Layout::EdgesByRelation).then(|| edges_by_relation(graph)),
                )
            },
            || {
                rayon::join(
                    || want(Layout::InCsr).then(|| in_csr(graph)),
                    || {
                        rayon::join(
                            || {
                                want(Layout::Compact(Endpoint::Src))
                                    .then(|| compact_table(graph, Endpoint::Src))
                            },
                            || {
                                want(Layout::Compact(Endpoint::Dst))
                                    .then(|| compact_table(graph, Endpoint::Dst))
                            },
                        )
                    },
                )
            },
        );
        Ok(Self { node_type, by_relation, in_csr, compact: [src, dst] })
    }

    /// The edges sorted by (relation, destination), if built.
    pub fn edges_by_relation(&self) -> Option<&EdgesByRelation> {
        self.by_relation.as_ref()
    }
    /// The incoming-edge CSR, if built.
    pub fn in_csr(&self) -> Option<&InCsr> {
        self.in_csr.as_ref()
    }
    /// The compact table of `ep`, if built.
    pub fn compact(&self, ep: Endpoint) -> Option<&CompactTable> {
        self.compact[ep_index(ep)].as_ref()
    }
}

/// A stable counting sort of `items` by `key(item) < num_keys`: the sorted items and the
/// `num_keys + 1` group offsets.
fn counting_sort(
    items: impl Iterator<Item = u32> + Clone,
    num_keys: usize,
    key: impl Fn(u32) -> usize,
) -> (Vec<u32>, Vec<usize>) {
    let mut offsets = vec![0usize; num_keys + 1];
    let mut len = 0;
    for x in items.clone() {
        offsets[key(x) + 1] += 1;
        len += 1;
    }
    for k in 0..num_keys {
        offsets[k + 1] += offsets[k];
    }
    let mut next = offsets.clone();
    let mut out = vec![0u32; len];
    for x in items {
        let k = key(x);
        out[next[k]] = x;
        next[k] += 1;
    }
    (out, offsets)
}

/// Edges by (relation, node at `ep`, edge id): sorted by node, then stably by relation.
fn sorted_by_relation_then(graph: &HeteroGraph, ep: Endpoint) -> (Vec<u32>, Vec<usize>) {
    let nodes = endpoint_nodes(graph, ep);
    let (by_node, _) = counting_sort(0..graph.num_edges() as u32, graph.num_nodes(), |e| {
        nodes[e as usize] as usize
    });
    counting_sort(by_node.iter().copied(), graph.num_relations(), |e| {
        graph.rel[e as usize] as usize
    })
}

fn endpoint_nodes(graph: &HeteroGraph, ep: Endpoint) -> &[u32] {
    match ep {
        Endpoint::Src => &graph.src,
        Endpoint::Dst => &graph.dst,
    }
}

/// Builds [`EdgesByRelation`].
pub fn edges_by_relation(graph: &HeteroGraph) -> EdgesByRelation {
    let (order, offsets) = sorted_by_relation_then(graph, Endpoint::Dst);
    EdgesByRelation { order, offsets }
}

/// Builds [`InCsr`].
pub fn in_csr(graph: &HeteroGraph) -> InCsr {
    let (edges, offsets) = counting_sort(0..graph.num_edges() as u32, graph.num_nodes(), |e| {
        graph.dst[e as usize] as usize
    });
    InCsr { offsets, edges }
}

/// Builds the [`CompactTable`] of `ep`.
pub fn compact_table(graph: &HeteroGraph, ep: Endpoint) -> CompactTable {
    let nodes = endpoint_nodes(graph, ep);
    let (order, _) = sorted_by_relation_then(graph, ep);
    let mut table = CompactTable {
        endpoint: ep,
        node: Vec::new(),
        rel: Vec::new(),
        rel_offsets: vec![0; graph.num_relations() + 1],
        edge_row: vec![0; graph.num_edges()],
        row_edges: Vec::new(),
        row_offsets: vec![0],
    };
    let mut last: Option<(u32, u32)> = None;
    for (i, &e) in order.iter().enumerate() {
        let key = (graph.rel[e as usize], nodes[e as usize]);
        if last != Some(key) {
            if last.is_some() {
                table.row_offsets.push(i);
            }
            table.rel.push(key.0);
            table.node.push(key.1);
            table.rel_offsets[key.0 as usize + 1] += 1;
            last = Some(key);
        }
        table.edge_row[e as usize] = (table.node.len() - 1) as u32;
    }
    if last.is_some() {
        table.row_offsets.push(order.len());
    }
    table.row_edges = order;
    for r in 0..graph.num_relations() {
        table.rel_offsets[r + 1] += table.rel_offsets[r];
    }
    table
}

/// Number of unique (node at `ep`, relation) pairs among the edges (edges with ids out of
/// range are ignored).
fn unique_pairs(graph: &HeteroGraph, ep: Endpoint) -> usize {
    let mut keys: Vec<u64> = endpoint_nodes(graph, ep)
        .iter()
        .zip(&graph.rel)
        .map(|(&n, &r)| (u64::from(r) << 32) | u64::from(n))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// The sizes of `graph` that the optimiser's cost model uses.
pub fn graph_stats(graph: &HeteroGraph) -> GraphStats {
    let (compact_src_rows, compact_dst_rows) =
        rayon::join(|| unique_pairs(graph, Endpoint::Src), || unique_pairs(graph, Endpoint::Dst));
    GraphStats {
        nodes: graph.num_nodes(),
        edges: graph.num_edges(),
        relations: graph.num_relations(),
        node_types: graph.num_node_types(),
        compact_src_rows,
        compact_dst_rows,
        max_in_degree: graph.in_degrees().into_iter().max().unwrap_or(0) as usize,
        typed_relations: graph
            .relations
            .iter()
            .all(|r| r.src_type.is_some() && r.dst_type.is_some()),
    }
}
