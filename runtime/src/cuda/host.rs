//! Host-side preparation of a CUDA execution, independent of any device: row counts, the
//! storage plan (one allocation per input, weight, output and un-slotted temp, one per temp
//! slot sized for its largest buffer), the graph arrays the kernels name, each GEMM's and
//! weight gradient's row order and tile table, and the device-memory estimate they add up to.
//!
//! Everything here follows `pigeon_codegen::spec`: arrays are `u32`, the in-CSR's edges of each
//! destination are sorted by (relation, edge id), tiles are `(start, end, segment)` triples.

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::layout::Layouts;
use crate::segments;
use pigeon_codegen::params::array_name;
use pigeon_codegen::{CudaProgram, GraphArray, Grid, KernelLaunch, Param, Segmentation};
use pigeon_ir::plan::{BufferKind, Kernel, Layout, Plan, RowSpace};
use pigeon_ir::{Endpoint, EntityId, Select, WeightId};
use std::collections::BTreeMap;

/// The device-memory estimate of one execution.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemoryEstimate {
    /// Bytes in all.
    pub total_bytes: usize,
    /// Each allocation: what it holds and its bytes.
    pub items: Vec<(String, usize)>,
}

impl MemoryEstimate {
    /// The `n` biggest items, largest first, as `name (size)` joined by `; `.
    pub fn biggest(&self, n: usize) -> String {
        let mut items: Vec<&(String, usize)> = self.items.iter().collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        items
            .iter()
            .take(n)
            .map(|(name, b)| format!("{name} ({})", crate::memory::human(*b as u128)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Ok` when the estimate fits in `free` bytes, else [`RuntimeError::DeviceMemory`] with
    /// the bytes needed and available and the three biggest items.
    pub fn check_fits(&self, free: usize) -> Result<()> {
        if self.total_bytes > free {
            return Err(RuntimeError::DeviceMemory {
                needed: self.total_bytes,
                available: free,
                detail: self.biggest(3),
            });
        }
        Ok(())
    }
}

/// What a storage is filled with before the first kernel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fill {
    /// The bound input of this name.
    Input(String),
    /// A weight's values.
    Weight(WeightId),
    /// Zeros (temps and outputs).
    Zero,
}

/// One device allocation of `f32`s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StorageSpec {
    /// Values it holds (at least the largest buffer living in it).
    pub len: usize,
    /// What it is, for estimates.
    pub label: String,
    /// Initial contents.
    pub fill: Fill,
}

/// A GEMM's segmentation as uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GemmTables {
    /// Row ids in segment order (only for segmentations with an order).
    pub order: Option<Vec<u32>>,
    /// `(start, end, segment)` triples.
    pub tiles: Vec<u32>,
}

impl GemmTables {
    /// Number of tiles (the grid's x extent).
    pub fn num_tiles(&self) -> usize {
        self.tiles.len() / 3
    }
}

/// Everything the host computes before touching the device.
pub(crate) struct Prepared {
    /// Rows of each row space on this graph.
    pub counts: BTreeMap<RowSpaceKey, usize>,
    /// Storage index of each buffer.
    pub of_buffer: Vec<usize>,
    /// Values of each buffer (rows x per-row elements).
    pub len: Vec<usize>,
    /// The allocations.
    pub storages: Vec<StorageSpec>,
    /// The graph arrays the kernels name.
    pub arrays: Vec<(GraphArray, Vec<u32>)>,
    /// Per kernel launch (same order as the program's), its GEMM tables.
    pub gemm: Vec<Option<GemmTables>>,
}

/// A sortable key for a row space (counts are kept in a map).
pub(crate) type RowSpaceKey = (u8, u8);

fn key(s: RowSpace) -> RowSpaceKey {
    let ep = |e: Endpoint| if e == Endpoint::Src { 0 } else { 1 };
    match s {
        RowSpace::Nodes => (0, 0),
        RowSpace::Edges => (1, 0),
        RowSpace::Compact(e) => (2, ep(e)),
        RowSpace::Relations => (3, 0),
        RowSpace::NodeTypes => (4, 0),
        RowSpace::One => (5, 0),
    }
}

fn internal(m: String) -> RuntimeError {
    RuntimeError::Internal(m)
}

/// The number of rows of `space` on `graph`.
pub(crate) fn count(graph: &HeteroGraph, layouts: &Layouts, space: RowSpace) -> Result<usize> {
    Ok(match space {
        RowSpace::Nodes => graph.num_nodes(),
        RowSpace::Edges => graph.num_edges(),
        RowSpace::Compact(ep) => layouts
            .compact(ep)
            .ok_or_else(|| internal(format!("compact.{ep} table not built")))?
            .len(),
        RowSpace::Relations => graph.num_relations(),
        RowSpace::NodeTypes => graph.num_node_types(),
        RowSpace::One => 1,
    })
}

impl Prepared {
    /// Rows of `space` (counted for every space the plan or program names).
    pub fn count(&self, space: RowSpace) -> Result<usize> {
        self.counts
            .get(&key(space))
            .copied()
            .ok_or_else(|| internal(format!("rows of {space:?} were not counted")))
    }

    /// The device memory all of this takes (each allocation at least one element).
    pub fn estimate(&self) -> MemoryEstimate {
        let mut items = Vec::new();
        for s in &self.storages {
            items.push((s.label.clone(), alloc_len(s.len) * 4));
        }
        for (a, v) in &self.arrays {
            items.push((format!("graph array `{}`", array_name(*a)), alloc_len(v.len()) * 4));
        }
        for (i, t) in self.gemm.iter().enumerate() {
            if let Some(t) = t {
                if let Some(o) = &t.order {
                    items.push((format!("row order of GEMM launch {i}"), alloc_len(o.len()) * 4));
                }
                items.push((format!("tiles of GEMM launch {i}"), alloc_len(t.tiles.len()) * 4));
            }
        }
        MemoryEstimate { total_bytes: items.iter().map(|i| i.1).sum(), items }
    }
}

/// Elements actually allocated for `len` (an empty allocation is given one element, so every
/// kernel parameter is a valid pointer).
pub(crate) fn alloc_len(len: usize) -> usize {
    len.max(1)
}

/// Prepares `program` (generated from `plan`) on `graph`: validates the graph, builds the
/// layouts the kernels need, counts rows, plans storages, builds graph arrays and GEMM tables.
pub(crate) fn prepare(plan: &Plan, graph: &HeteroGraph, program: &CudaProgram) -> Result<Prepared> {
    if program.kernels.len() != plan.kernels.len() {
        return Err(internal(format!(
            "{} kernel launches for {} plan kernels",
            program.kernels.len(),
            plan.kernels.len()
        )));
    }
    let layouts = Layouts::build(graph, &needed_layouts(plan, program))?;
    let mut counts = BTreeMap::new();
    for space in spaces(plan, program) {
        counts.insert(key(space), count(graph, &layouts, space)?);
    }
    let mut prep = Prepared {
        counts,
        of_buffer: Vec::new(),
        len: Vec::new(),
        storages: Vec::new(),
        arrays: Vec::new(),
        gemm: Vec::new(),
    };
    plan_storages(plan, &mut prep)?;
    let mut wanted: Vec<GraphArray> = program
        .kernels
        .iter()
        .flat_map(|k| k.params.iter())
        .filter_map(|p| if let Param::Array(a) = p { Some(*a) } else { None })
        .collect();
    wanted.sort();
    wanted.dedup();
    for a in wanted {
        prep.arrays.push((a, graph_array(graph, &layouts, a)?));
    }
    for launch in &program.kernels {
        let tables = match plan.kernels.get(launch.kernel) {
            Some(Kernel::Gemm(g)) => {
                let b_rows = rows_of(plan, g.b, launch)?;
                let seg = (g.segment, g.rows, b_rows);
                Some(gemm_tables(graph, &layouts, &prep, seg, launch)?)
            }
            Some(Kernel::WeightGrad(g)) => {
                let c_rows = rows_of(plan, g.c, launch)?;
                let seg = (g.segment, g.rows, c_rows);
                Some(gemm_tables(graph, &layouts, &prep, seg, launch)?)
            }
            Some(Kernel::Traversal(_)) => None,
            None => return Err(internal(format!("launch of unknown kernel {}", launch.kernel))),
        };
        prep.gemm.push(tables);
    }
    Ok(prep)
}

/// Every row space the plan's buffers and the program's kernels count.
fn spaces(plan: &Plan, program: &CudaProgram) -> Vec<RowSpace> {
    let mut out: Vec<RowSpace> = plan.buffers.values().map(|b| b.rows).collect();
    for k in &program.kernels {
        for p in &k.params {
            if let Param::Count(s) = p {
                out.push(*s);
            }
        }
        if let Grid::Rows { space, .. } = k.grid {
            out.push(space);
        }
    }
    for k in plan.kernels.values() {
        match k {
            Kernel::Gemm(g) => out.push(g.rows),
            Kernel::WeightGrad(g) => out.push(g.rows),
            Kernel::Traversal(_) => {}
        }
    }
    out.push(RowSpace::Relations);
    out.push(RowSpace::NodeTypes);
    out
}

/// The layouts the plan lists plus those its row spaces, arrays and segmentations need.
fn needed_layouts(plan: &Plan, program: &CudaProgram) -> Vec<Layout> {
    let mut need = plan.layouts.clone();
    let mut add = |l: Layout| {
        if !need.contains(&l) {
            need.push(l);
        }
    };
    for s in spaces(plan, program) {
        if let RowSpace::Compact(ep) = s {
            add(Layout::Compact(ep));
        }
    }
    for k in &program.kernels {
        for p in &k.params {
            match p {
                Param::Array(GraphArray::CsrOffsets | GraphArray::CsrEdges) => add(Layout::InCsr),
                Param::Array(
                    GraphArray::CompactNode(ep)
                    | GraphArray::CompactRel(ep)
                    | GraphArray::CompactEdgeRow(ep),
                ) => add(Layout::Compact(*ep)),
                _ => {}
            }
        }
        match k.segmentation {
            Some(Segmentation::EdgesByRelation) => add(Layout::EdgesByRelation),
            Some(Segmentation::CompactByRelation(ep)) => add(Layout::Compact(ep)),
            _ => {}
        }
    }
    need
}

/// One storage per input, weight, output and un-slotted temp; one per slot.
fn plan_storages(plan: &Plan, prep: &mut Prepared) -> Result<()> {
    let mut slots: BTreeMap<u32, usize> = BTreeMap::new();
    for (id, buf) in plan.buffers.iter() {
        let len = prep.count(buf.rows)?.checked_mul(buf.shape.numel()).ok_or_else(|| {
            RuntimeError::TooLarge {
                what: format!("buffer `{}`", buf.name),
                bytes: u128::MAX,
                limit: None,
            }
        })?;
        prep.len.push(len);
        let (label, fill) = match &buf.kind {
            BufferKind::Input(n) => (format!("input `{n}`"), Fill::Input(n.clone())),
            BufferKind::Weight(w) => (format!("weight `{}`", buf.name), Fill::Weight(*w)),
            BufferKind::Output(n) => (format!("output `{n}`"), Fill::Zero),
            BufferKind::Temp => (format!("temp `{}`", buf.name), Fill::Zero),
        };
        let storage = match (&buf.kind, buf.slot) {
            (BufferKind::Temp, Some(slot)) => {
                let i = *slots.entry(slot).or_insert_with(|| {
                    let label = format!("temp slot {slot} (");
                    prep.storages.push(StorageSpec { len: 0, label, fill: Fill::Zero });
                    prep.storages.len() - 1
                });
                let s = &mut prep.storages[i];
                s.len = s.len.max(len);
                if !s.label.ends_with('(') {
                    s.label.push_str(", ");
                }
                s.label.push_str(&format!("`{}`", buf.name));
                i
            }
            _ => {
                prep.storages.push(StorageSpec { len, label, fill });
                prep.storages.len() - 1
            }
        };
        prep.of_buffer.push(storage);
        debug_assert_eq!(prep.of_buffer.len(), id.index() + 1);
    }
    for s in &mut prep.storages {
        if s.label.starts_with("temp slot") {
            s.label.push(')');
        }
    }
    Ok(())
}

fn to_u32(v: &[usize], what: &str) -> Result<Vec<u32>> {
    v.iter().map(|&x| u32::try_from(x).map_err(|_| too_big(what))).collect()
}

fn too_big(what: &str) -> RuntimeError {
    RuntimeError::Unsupported(format!("{what}: more than 2^32 - 1 rows on the GPU"))
}

/// The values of graph array `a`.
pub(crate) fn graph_array(graph: &HeteroGraph, l: &Layouts, a: GraphArray) -> Result<Vec<u32>> {
    let compact = |ep: Endpoint| {
        l.compact(ep).ok_or_else(|| internal(format!("compact.{ep} table not built")))
    };
    let csr = || l.in_csr().ok_or_else(|| internal("in-CSR not built".into()));
    Ok(match a {
        GraphArray::Src => graph.src.clone(),
        GraphArray::Dst => graph.dst.clone(),
        GraphArray::Rel => graph.rel.clone(),
        GraphArray::NodeType => l.node_type.clone(),
        GraphArray::CsrOffsets => to_u32(&csr()?.offsets, "the in-CSR")?,
        GraphArray::CsrEdges => {
            let c = csr()?;
            let mut edges = c.edges.clone();
            for w in c.offsets.windows(2) {
                edges[w[0]..w[1]].sort_unstable_by_key(|&e| (graph.rel[e as usize], e));
            }
            edges
        }
        GraphArray::CompactNode(ep) => compact(ep)?.node.clone(),
        GraphArray::CompactRel(ep) => compact(ep)?.rel.clone(),
        GraphArray::CompactEdgeRow(ep) => compact(ep)?.edge_row.clone(),
        GraphArray::RelationType(ep) => graph.relation_end_types(ep)?,
    })
}

/// The slice each row of `space` selects by `sel` in a buffer with rows `target` (only for
/// GEMMs segmented by sorting: the selections `pigeon_codegen::index` resolves through
/// node types).
fn slice_table(
    graph: &HeteroGraph,
    l: &Layouts,
    sel: Select,
    space: RowSpace,
    target: RowSpace,
) -> Result<Vec<u32>> {
    let types = &l.node_type;
    let ep = match sel {
        Select::SrcType => Endpoint::Src,
        Select::DstType => Endpoint::Dst,
        _ => {
            return Err(RuntimeError::Unsupported(format!(
                "a GEMM over {space:?} rows segmented by {sel} into {target:?} slices"
            )))
        }
    };
    let nodes = |ep| if ep == Endpoint::Src { &graph.src } else { &graph.dst };
    match (space, target) {
        (RowSpace::Edges, RowSpace::NodeTypes) => {
            Ok(nodes(ep).iter().map(|&n| types[n as usize]).collect())
        }
        (RowSpace::Compact(c), RowSpace::NodeTypes) => {
            let t = l.compact(c).ok_or_else(|| internal(format!("compact.{c} not built")))?;
            if c == ep {
                Ok(t.node.iter().map(|&n| types[n as usize]).collect())
            } else {
                let rt = graph.relation_end_types(ep)?;
                Ok(t.rel.iter().map(|&r| rt[r as usize]).collect())
            }
        }
        (RowSpace::Relations, RowSpace::NodeTypes) => graph.relation_end_types(ep),
        _ => Err(internal(format!("a {space:?} row cannot select a {target:?} slice by {sel}"))),
    }
}

/// The rows of buffer `b` of a kernel's plan.
fn rows_of(plan: &Plan, b: pigeon_ir::plan::BufferId, launch: &KernelLaunch) -> Result<RowSpace> {
    plan.buffers
        .get(b)
        .map(|b| b.rows)
        .ok_or_else(|| internal(format!("{}: unknown buffer {b}", launch.name)))
}

/// The row order and tile table of a GEMM (iteration rows segmented by the B slice they
/// select) or a weight gradient (by the C slice), given as `(segment, rows, slice rows)`,
/// checked against the segmentation the kernel expects.
fn gemm_tables(
    graph: &HeteroGraph,
    l: &Layouts,
    prep: &Prepared,
    (segment, g_rows, b_rows): (Select, RowSpace, RowSpace),
    launch: &KernelLaunch,
) -> Result<GemmTables> {
    let kind = segments::classify_rows(segment, g_rows, b_rows);
    if launch.segmentation != Some(kind) {
        return Err(internal(format!(
            "{}: the kernel expects segmentation {:?}, the runtime builds {kind:?}",
            launch.name, launch.segmentation
        )));
    }
    let tile_m = match launch.grid {
        Grid::Gemm { tile_m, .. } => tile_m as usize,
        Grid::Rows { .. } => {
            return Err(internal(format!("{}: a GEMM with a row grid", launch.name)))
        }
    };
    let rows = prep.count(g_rows)?;
    let slices = prep.count(b_rows)?;
    let table = match kind {
        Segmentation::Sorted(sel) => slice_table(graph, l, sel, g_rows, b_rows)?,
        _ => Vec::new(),
    };
    let segs = segments::segments(kind, graph, l, rows, slices, |i| table[i] as usize)?;
    let tiles = segments::tiles(&segs.offsets, tile_m)
        .ok_or_else(|| internal(format!("{}: cannot cut tiles of {tile_m} rows", launch.name)))?;
    let order = segs.order.map(|o| o.into_owned());
    if kind.has_order() != order.is_some() {
        return Err(internal(format!("{}: row order mismatch for {kind:?}", launch.name)));
    }
    Ok(GemmTables { order, tiles })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Relation;

    #[test]
    fn csr_edges_are_sorted_by_relation_then_edge_within_each_destination() {
        let rel = |n: &str| Relation { name: n.into(), src_type: Some(0), dst_type: None };
        // Into node 0: e0 (r1), e1 (r0), e2 (r1); into node 1: e3 (r1), e4 (r0).
        let g = HeteroGraph {
            node_types: vec!["a".into()],
            type_offsets: vec![0, 2],
            relations: vec![rel("r0"), rel("r1")],
            src: vec![1, 1, 0, 0, 1],
            dst: vec![0, 0, 0, 1, 1],
            rel: vec![1, 0, 1, 1, 0],
            ..HeteroGraph::default()
        };
        let l = Layouts::build(&g, &[Layout::InCsr]).unwrap_or_else(|e| panic!("{e}"));
        let arr = |a| graph_array(&g, &l, a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(arr(GraphArray::CsrOffsets), vec![0, 3, 5]);
        assert_eq!(arr(GraphArray::CsrEdges), vec![1, 0, 2, 4, 3]);
        assert_eq!(arr(GraphArray::RelationType(Endpoint::Src)), vec![0, 0]);
        let missing = graph_array(&g, &l, GraphArray::RelationType(Endpoint::Dst));
        assert!(matches!(missing, Err(RuntimeError::Unsupported(m)) if m.contains("`r0`")));
    }
}
