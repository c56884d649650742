//! The intra-operator IR (level 2): kernel plans.
//!
//! A [`Plan`] says how to compute a [`crate::Module`] on a graph: which buffers exist (with
//! their row spaces, per-row shapes and lifetimes), which graph layouts must be built, and a
//! sequence of kernel instances, each one of exactly two templates:
//!
//! - [`Gemm`]: `C[rows] (+)= epilogue(A[gather(rows)] x B[segment(rows)])`: the rows of an
//!   iteration space (edges, nodes, compact rows, relations) are segmented by the weight slice
//!   they select (relation, node type, ...); A's rows are gathered through an index inside the
//!   loads; the product is post-processed by a fused epilogue; C is written densely, or
//!   accumulated into destination nodes (the R-GCN kernel).
//! - [`Traversal`]: a loop over rows (element-wise), over destination nodes and their incoming
//!   edges (node-parallel: softmax and aggregation are local reductions, no atomics), or over
//!   edges (edge-parallel: aggregation by atomic adds), evaluating a fused body of statements
//!   ([`Stmt`]) whose intermediate values live in registers ([`RegId`]), not in buffers.
//!
//! Kernels run in order; a kernel reads only buffers that are inputs, weights, or written by an
//! earlier kernel. Verification rules are in `plan_verify.rs`.

use crate::entity_id;
use crate::inter::{
    AggGroup, AggOp, BinaryOp, DType, Endpoint, Select, Shape, UnaryOp, Weight, WeightId,
};
use crate::shape::LinearForm;
use crate::Arena;

entity_id!(
    /// A buffer of a plan.
    BufferId,
    "b"
);
entity_id!(
    /// A kernel instance of a plan.
    KernelId,
    "k"
);
entity_id!(
    /// A register of a traversal body: one per statement.
    RegId,
    "r"
);

/// The rows a buffer has, or a kernel iterates over.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowSpace {
    /// One row per node.
    Nodes,
    /// One row per edge (in the graph's edge order).
    Edges,
    /// One row per unique (node, relation) pair of an endpoint.
    Compact(Endpoint),
    /// One row per relation.
    Relations,
    /// One row per node type.
    NodeTypes,
    /// A single row.
    One,
}

/// What a buffer holds and who provides it.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// A model input, bound at run time.
    Input(String),
    /// A declared weight (rows = its slices).
    Weight(WeightId),
    /// An intermediate written and read by kernels.
    Temp,
    /// A model output (written by a kernel, returned to the caller).
    Output(String),
}

/// A buffer: a table of rows of one per-row shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// A readable name (the source-level name where there is one).
    pub name: String,
    /// Its rows.
    pub rows: RowSpace,
    /// Per-row shape.
    pub shape: Shape,
    /// Element type.
    pub dtype: DType,
    /// Role.
    pub kind: BufferKind,
    /// Temps that share one allocation have the same slot (buffer reuse by lifetime); `None`
    /// for buffers that are not temps or not assigned yet.
    pub slot: Option<u32>,
}

/// A graph layout a plan needs; built once per graph, only when asked for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    /// Nodes grouped by type with offsets (always true of pigeon graphs; listed for back ends
    /// that upload it).
    NodesByType,
    /// Edge ids sorted by (relation, destination), with per-relation offsets.
    EdgesByRelation,
    /// Incoming-edge CSR by destination.
    InCsr,
    /// The compact table of an endpoint: unique (node, relation) rows sorted by (relation,
    /// node), per-relation offsets, and each edge's row.
    Compact(Endpoint),
}

/// How an iteration row finds a row of another buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowIndex {
    /// The same row (the buffer has the iteration's row space), or row 0 of a `One` buffer.
    This,
    /// An edge (or compact) row reads the node at this endpoint.
    Node(Endpoint),
    /// An edge row reads its compact row of this endpoint.
    EdgeToCompact(Endpoint),
    /// A row reads the slice of a weight-like buffer it selects (relation, node type, ...).
    Select(Select),
}

/// One statement of a traversal body; defines register `r{index}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// Whether the statement is evaluated per edge (or row) or per destination node.
    pub level: Level,
    /// The operation.
    pub op: StmtOp,
    /// Per-row shape of the register it defines (`[]` for stores).
    pub shape: Shape,
}

/// At which granularity a statement runs inside a traversal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Once per iteration row of a `Rows` schedule, or per edge of an edge or node traversal.
    Edge,
    /// Once per destination node (node-parallel traversals only, after the edge loop).
    Node,
}

/// The operations of a traversal body.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtOp {
    /// Read a row of a buffer.
    Load {
        /// The buffer.
        buf: BufferId,
        /// Which row.
        index: RowIndex,
    },
    /// A scalar constant.
    Const(f64),
    /// Element-wise function.
    Unary {
        /// The function.
        op: UnaryOp,
        /// Operand.
        x: RegId,
    },
    /// Element-wise function of two registers, broadcast as in `shape::broadcast`.
    Binary {
        /// The function.
        op: BinaryOp,
        /// Left.
        a: RegId,
        /// Right.
        b: RegId,
    },
    /// Dot product over the last axis.
    Dot {
        /// Left.
        a: RegId,
        /// Right.
        b: RegId,
    },
    /// Reshape.
    View {
        /// Operand.
        x: RegId,
        /// New shape.
        shape: Shape,
    },
    /// Concatenate along the last axis.
    Concat {
        /// Operands.
        xs: Vec<RegId>,
    },
    /// A small matrix-vector product in registers: `x @ w[select]`.
    MatVec {
        /// Row operand.
        x: RegId,
        /// Weight-like buffer.
        w: BufferId,
        /// Slice selection.
        select: Select,
        /// Contraction form.
        form: LinearForm,
    },
    /// Softmax of an edge register over the destination's incoming edges (node-parallel only).
    Softmax {
        /// Scores.
        x: RegId,
    },
    /// Reduction of an edge register over the destination's incoming edges, giving a node
    /// register (node-parallel), or atomically added into `into` (edge-parallel, `Sum` only).
    Aggregate {
        /// Reduction.
        op: AggOp,
        /// Grouping.
        group: AggGroup,
        /// Edge register.
        x: RegId,
    },
    /// `dy * f'(x)`, element-wise (the derivative of [`StmtOp::Unary`]).
    UnaryGrad {
        /// The function differentiated.
        op: UnaryOp,
        /// Its operand.
        x: RegId,
        /// The adjoint of its result.
        dy: RegId,
    },
    /// Sums the register's broadcast axes away, down to the statement's shape (the transpose
    /// of broadcasting).
    SumTo {
        /// Operand.
        x: RegId,
    },
    /// Swaps the last two axes.
    Transpose {
        /// Operand (rank at least 2).
        x: RegId,
    },
    /// `len` elements of the last axis from `start` (the transpose of [`StmtOp::Concat`]).
    Narrow {
        /// Operand.
        x: RegId,
        /// First element taken.
        start: usize,
        /// Number of elements taken.
        len: usize,
    },
    /// A scalar per edge: the size of its aggregation group among the destination's incoming
    /// edges (edge level of a node-parallel traversal).
    GroupSize {
        /// The grouping.
        group: AggGroup,
    },
    /// Per element, the edge register `dy` on the first edge of the group (in the
    /// destination's incoming-edge order) whose `x` attains the group's maximum, 0 on the
    /// others: the derivative of a max aggregation (edge level of a node-parallel traversal).
    MaxGrad {
        /// The grouping.
        group: AggGroup,
        /// The aggregated edge register.
        x: RegId,
        /// The adjoint of the aggregate, per edge (the destination's row).
        dy: RegId,
    },
    /// Write a register into the current row of a buffer (edge-level: the edge's row, or the
    /// destination node's row with `AddIntoDst` semantics in edge-parallel traversals;
    /// node-level: the node's row).
    Store {
        /// Destination buffer.
        buf: BufferId,
        /// Value.
        x: RegId,
        /// How.
        mode: StoreMode,
    },
}

impl StmtOp {
    /// The registers the statement reads, in operand order.
    pub fn operands(&self) -> Vec<RegId> {
        match self {
            StmtOp::Load { .. } | StmtOp::Const(_) | StmtOp::GroupSize { .. } => Vec::new(),
            StmtOp::Unary { x, .. }
            | StmtOp::View { x, .. }
            | StmtOp::MatVec { x, .. }
            | StmtOp::Softmax { x }
            | StmtOp::Aggregate { x, .. }
            | StmtOp::SumTo { x }
            | StmtOp::Transpose { x }
            | StmtOp::Narrow { x, .. }
            | StmtOp::Store { x, .. } => vec![*x],
            StmtOp::Binary { a, b, .. } | StmtOp::Dot { a, b } => vec![*a, *b],
            StmtOp::UnaryGrad { x, dy, .. } | StmtOp::MaxGrad { x, dy, .. } => vec![*x, *dy],
            StmtOp::Concat { xs } => xs.clone(),
        }
    }
}

/// How a store or a GEMM writes its result.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreMode {
    /// Overwrite the row.
    Write,
    /// Add into the destination node's row (atomically where rows race): over edges, the
    /// edge's destination; over `compact.dst` rows, the row's node.
    AddIntoDst,
    /// Add into the source node's row (atomically where rows race): the transpose of a
    /// gather by source, for input gradients. Over edges, the edge's source; over
    /// `compact.src` rows, the row's node.
    AddIntoSrc,
    /// Add into the edge's compact row of this endpoint (atomically where rows race): the
    /// transpose of a gather by compact row, for the gradients of per-relation tables.
    AddIntoCompact(Endpoint),
}

impl StoreMode {
    /// Whether the mode adds into rows that several iteration rows share (the buffer starts
    /// at zero and is written by exactly one kernel).
    pub fn accumulates(self) -> bool {
        !matches!(self, StoreMode::Write)
    }

    /// Whether this mode can store from iteration rows `rows`: `write` from any; the node adds
    /// from edges or the compact rows of their endpoint; compact adds from edges.
    pub fn stores_from(self, rows: RowSpace) -> bool {
        match self {
            StoreMode::Write => true,
            StoreMode::AddIntoDst => {
                matches!(rows, RowSpace::Edges | RowSpace::Compact(Endpoint::Dst))
            }
            StoreMode::AddIntoSrc => {
                matches!(rows, RowSpace::Edges | RowSpace::Compact(Endpoint::Src))
            }
            StoreMode::AddIntoCompact(_) => rows == RowSpace::Edges,
        }
    }

    /// The iteration rows this mode stores from, for messages: `edge or compact.src` for
    /// `add_into_src`.
    pub fn sources(self) -> &'static str {
        match self {
            StoreMode::Write => "any",
            StoreMode::AddIntoDst => "edge or compact.dst",
            StoreMode::AddIntoSrc => "edge or compact.src",
            StoreMode::AddIntoCompact(_) => "edge",
        }
    }

    /// The rows an edge-level add of this mode writes (`None` for `write`, which writes the
    /// iteration's own rows).
    pub fn target_rows(self) -> Option<RowSpace> {
        match self {
            StoreMode::Write => None,
            StoreMode::AddIntoDst | StoreMode::AddIntoSrc => Some(RowSpace::Nodes),
            StoreMode::AddIntoCompact(ep) => Some(RowSpace::Compact(ep)),
        }
    }
}

/// How the rows of a traversal are distributed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Independent rows of a row space (element-wise kernels).
    Rows(RowSpace),
    /// One task per destination node over its incoming edges (needs [`Layout::InCsr`]).
    NodeParallel,
    /// One task per edge; aggregations become atomic adds into destinations.
    EdgeParallel,
}

/// A traversal kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Traversal {
    /// Row distribution.
    pub schedule: Schedule,
    /// The fused body; register `r{i}` is defined by `body[i]`.
    pub body: Vec<Stmt>,
}

/// Post-processing of each GEMM output row, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Epilogue {
    /// Multiply by a per-row scalar (R-GCN's edge norm), read by `index`.
    Scale {
        /// Buffer of scalars.
        buf: BufferId,
        /// Row of it.
        index: RowIndex,
    },
    /// Add a row (a bias), broadcast.
    Add {
        /// Buffer.
        buf: BufferId,
        /// Row of it.
        index: RowIndex,
    },
    /// Apply an activation.
    Unary(UnaryOp),
}

/// A GEMM kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    /// The iteration rows (rows of the product before it is stored).
    pub rows: RowSpace,
    /// How iteration rows select the B slice (the segmentation).
    pub segment: Select,
    /// The A operand.
    pub a: BufferId,
    /// How iteration row `i` finds its A row.
    pub gather: RowIndex,
    /// The weight-like B operand.
    pub b: BufferId,
    /// Contraction form (with K, N and batch extents).
    pub form: LinearForm,
    /// Fused post-processing.
    pub epilogue: Vec<Epilogue>,
    /// The output.
    pub c: BufferId,
    /// Write rows densely, or add edge rows into their destination nodes.
    pub store: StoreMode,
}

/// The GEMM template's weight-gradient form: for each slice `s` of the weight-like `c`,
/// `C[s] = sum over the iteration rows i selecting s of A[i]^T B[i]` (per-segment outer
/// products, contracted as `form` says: the transpose of [`Gemm`] with respect to its B).
/// Without an A operand, A is 1 and the kernel is a segmented row sum (`slice_sum`).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightGrad {
    /// The iteration rows (those of the forward GEMM).
    pub rows: RowSpace,
    /// How iteration rows select the slice of `c` they add into.
    pub segment: Select,
    /// The forward GEMM's A operand and how iteration rows find their row; `None` for 1.
    pub a: Option<(BufferId, RowIndex)>,
    /// The adjoint of the forward GEMM's output, and how iteration rows find their row.
    pub b: (BufferId, RowIndex),
    /// Contraction form of the forward product (`plain(k=1, n=numel)` without A).
    pub form: LinearForm,
    /// The weight-like output, overwritten.
    pub c: BufferId,
}

/// A kernel instance of one of the two templates.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// Segmented gather-GEMM-scatter.
    Gemm(Gemm),
    /// Segmented outer products `A^T B` into weight-like rows (the GEMM template's transposed
    /// form, for weight gradients).
    WeightGrad(WeightGrad),
    /// Node, edge or row traversal with a fused body.
    Traversal(Traversal),
}

/// A kernel plan.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// The model's name.
    pub name: String,
    /// Its parameters.
    pub params: Vec<(String, i64)>,
    /// Declared weights (as in the module).
    pub weights: Arena<WeightId, Weight>,
    /// Buffers.
    pub buffers: Arena<BufferId, Buffer>,
    /// Layouts to build before the first kernel.
    pub layouts: Vec<Layout>,
    /// Kernels, in execution order.
    pub kernels: Arena<KernelId, Kernel>,
    /// Named outputs.
    pub outputs: Vec<(String, BufferId)>,
}
