//! What generated CUDA needs at launch: the typed description a runtime reads to bind and launch
//! each kernel of a [`CudaProgram`], without parsing the source.
//!
//! Every kernel is `extern "C" __global__ void NAME(params...)` with its parameters exactly in
//! the order of [`KernelLaunch::params`]:
//!
//! | [`Param`]          | C type              | what the runtime passes                              |
//! |--------------------|---------------------|------------------------------------------------------|
//! | `Buffer(b)`        | `float*`            | the device storage of plan buffer `b` (its slot's)   |
//! | `Array(a)`         | `const unsigned*`   | the graph array `a` ([`GraphArray`]), uploaded once  |
//! | `Count(space)`     | `unsigned`          | the number of rows of `space` on this graph          |
//! | `GemmOrder`        | `const unsigned*`   | the GEMM's row order (positions -> row ids)          |
//! | `GemmTiles`        | `const unsigned*`   | the GEMM's tile table: `3 x tiles` values            |
//!
//! GEMM segmentation ([`Segmentation`]) and tiles: the runtime groups the iteration rows by the
//! B slice they select (exactly as the CPU back end does), giving an optional `order` (row ids in
//! segment order) and `offsets` (`segments + 1` positions). It cuts each segment into tiles of at
//! most [`Grid::Gemm::tile_m`] positions and uploads, per tile `t`, the triple
//! `tiles[3t] = start position, tiles[3t+1] = end position (exclusive), tiles[3t+2] = segment`.
//! Without an order, a position is the row id itself. Tiles of empty segments are not listed.
//!
//! Weight gradients (`wgrad_*` kernels, `pigeon_ir::plan::WeightGrad`) take the same row order
//! and tile table, segmented by the slice of C each iteration row selects (C's rows in place of
//! B's), with tiles of at most [`Grid::Gemm::tile_m`] positions. They add per-tile partial sums
//! into C with atomics: the runtime zeroes C right before every launch (even an empty one, so
//! that slices without rows are 0).
//!
//! Launch geometry ([`Grid`]): a `Rows` kernel gets `ceil(count(space) / rows_per_block)` blocks
//! of [`KernelLaunch::block`] threads; a `Gemm` kernel (GEMM or weight gradient) gets `(number
//! of tiles, y_blocks)`. A grid with zero blocks is not launched. Shared memory is static
//! (declared in the source).

use pigeon_ir::plan::{BufferId, KernelId, RowSpace};
use pigeon_ir::{Endpoint, Select};

/// A whole plan's CUDA: one translation unit, and how to launch each kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct CudaProgram {
    /// The model's name.
    pub model: String,
    /// The CUDA C++ source (helpers inlined, so NVRTC needs no include path).
    pub source: String,
    /// One entry per plan kernel, in execution order.
    pub kernels: Vec<KernelLaunch>,
}

/// How to launch one generated kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelLaunch {
    /// The plan kernel it implements.
    pub kernel: KernelId,
    /// The `extern "C"` name: `{template}_{model}_{index}`, e.g. `gemm_rgcn_0`
    /// (templates: `gemm`, `wgrad`, `traversal`).
    pub name: String,
    /// Parameters, in order.
    pub params: Vec<Param>,
    /// Grid.
    pub grid: Grid,
    /// Threads per block.
    pub block: u32,
    /// The GEMM's or weight gradient's segmentation (`None` for traversals).
    pub segmentation: Option<Segmentation>,
}

/// A kernel parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// A plan buffer, `float*`.
    Buffer(BufferId),
    /// A graph array, `const unsigned*`.
    Array(GraphArray),
    /// Number of rows of a row space, `unsigned`.
    Count(RowSpace),
    /// The GEMM's row order, `const unsigned*` (only with [`Segmentation::has_order`]).
    GemmOrder,
    /// The GEMM's tile table, `const unsigned*`.
    GemmTiles,
}

/// Graph arrays a kernel can read, all `u32`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GraphArray {
    /// Source node of each edge (`E`).
    Src,
    /// Destination node of each edge (`E`).
    Dst,
    /// Relation of each edge (`E`).
    Rel,
    /// Type of each node (`N`).
    NodeType,
    /// Incoming-edge CSR offsets (`N + 1`). On the GPU the edges of each destination are sorted
    /// by (relation, edge id), so per-relation groups are contiguous runs.
    CsrOffsets,
    /// Incoming-edge CSR edge ids (`E`), grouped by destination, then by relation.
    CsrEdges,
    /// Node of each row of the compact table of an endpoint.
    CompactNode(Endpoint),
    /// Relation of each row of the compact table of an endpoint.
    CompactRel(Endpoint),
    /// Row of each edge in the compact table of an endpoint (`E`).
    CompactEdgeRow(Endpoint),
    /// The declared source (`Src`) or destination (`Dst`) node type of each relation (`R`);
    /// the runtime reports an error when a relation does not connect a single type pair.
    RelationType(Endpoint),
}

/// How a GEMM's iteration rows are grouped by the B slice they select (the runtime builds the
/// order and offsets; see the module doc).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segmentation {
    /// One segment of all rows, B slice 0 (a shared B).
    Single,
    /// Row `i` is segment `i` (B has the rows' own row space).
    PerRow,
    /// Edges sorted by (relation, destination, edge id): the `EdgesByRelation` layout.
    EdgesByRelation,
    /// Compact rows of an endpoint, already sorted by relation (offsets from the table).
    CompactByRelation(Endpoint),
    /// Nodes, already grouped by type (offsets: the graph's type offsets).
    NodesByType,
    /// Any other selection: rows counting-sorted by the slice they select.
    Sorted(Select),
}

impl Segmentation {
    /// Whether the runtime passes a row order (positions are not row ids).
    pub fn has_order(self) -> bool {
        matches!(self, Segmentation::EdgesByRelation | Segmentation::Sorted(_))
    }
}

/// Launch geometry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `ceil(count(space) / rows_per_block)` blocks.
    Rows {
        /// The row space counted.
        space: RowSpace,
        /// Rows (or nodes, or edges) per block.
        rows_per_block: u32,
    },
    /// `(tiles, y_blocks)` blocks (GEMMs and weight gradients).
    Gemm {
        /// Most positions per tile.
        tile_m: u32,
        /// Blocks along y (batches times column tiles).
        y_blocks: u32,
    },
}

/// How the GEMM template multiplies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub enum GemmMath {
    /// f32 FMA on CUDA cores (any architecture).
    #[default]
    Simt,
    /// TF32 tensor cores through `mma.sync` (sm_80 and newer), f32 accumulation.
    Tf32,
    /// BF16 tensor cores through `mma.sync` (sm_80 and newer), f32 accumulation.
    Bf16,
}

/// Code generation options.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Options {
    /// GEMM arithmetic.
    pub gemm_math: GemmMath,
}
