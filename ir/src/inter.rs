//! The inter-operator IR (level 1): an SSA graph of coarse operators over row domains.
//!
//! A [`Module`] is one model instantiated with concrete integer parameters, so every shape is
//! known. Each instruction produces one value, named by its [`ValueId`] (`v3`). A value is a
//! table with one row per element of its [`Domain`] (a node, an edge, a unique (node, relation)
//! pair, a relation, a node type, or a single shared row), each row a dense tensor of the value's
//! per-row [`Shape`].
//!
//! Weights are declared once in the module ([`WeightId`], `w1`) and enter the graph through a
//! [`Op::Weight`] instruction whose value lives in the weight's own domain (`shared`, `relation`
//! or `ntype`). Operators that combine a row domain with a weight domain say by which index each
//! row selects its weight slice ([`Select`]).
//!
//! Instructions are stored in definition order, which is a topological order: an operand always
//! refers to an earlier instruction (see `verify.rs` for the full list of invariants).

use crate::entity::Arena;
use crate::entity_id;
use std::fmt;

entity_id!(
    /// A value: the result of one instruction.
    ValueId,
    "v"
);
entity_id!(
    /// A weight declared by the module.
    WeightId,
    "w"
);

/// The set of rows a value has one row for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// One row per node of the graph (all node types together, grouped by type).
    Node,
    /// One row per edge.
    Edge,
    /// One row per unique (endpoint node, relation) pair among the edges.
    Compact(Endpoint),
    /// A single row shared by every row of any domain.
    Shared,
    /// One row per relation (edge type).
    Relation,
    /// One row per node type.
    NodeType,
}

impl Domain {
    /// Whether this is a weight-like domain (shared, relation, ntype).
    pub fn is_weight_like(self) -> bool {
        matches!(self, Domain::Shared | Domain::Relation | Domain::NodeType)
    }
    /// Whether rows of this domain are edges or compact (node, relation) rows, which carry
    /// a relation and two endpoints.
    pub fn is_edge_like(self) -> bool {
        matches!(self, Domain::Edge | Domain::Compact(_))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Node => f.write_str("node"),
            Domain::Edge => f.write_str("edge"),
            Domain::Compact(Endpoint::Src) => f.write_str("compact.src"),
            Domain::Compact(Endpoint::Dst) => f.write_str("compact.dst"),
            Domain::Shared => f.write_str("shared"),
            Domain::Relation => f.write_str("relation"),
            Domain::NodeType => f.write_str("ntype"),
        }
    }
}

/// One end of an edge.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// The source node (the message sender).
    Src,
    /// The destination node (the message receiver).
    Dst,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Src => "src",
            Endpoint::Dst => "dst",
        })
    }
}

/// The per-row shape of a value: `[]` scalar, `[d]` vector, `[h, d]` heads x vector, ...
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// The scalar shape `[]`.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }
    /// Number of elements per row.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// The extents.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Element type of a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (what compiled kernels compute in).
    F32,
    /// 64-bit float (what the reference interpreter computes in, whatever the declared type).
    F64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// The type of a value: its domain, per-row shape and element type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    /// Which rows the value has.
    pub domain: Domain,
    /// Shape of each row.
    pub shape: Shape,
    /// Element type.
    pub dtype: DType,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.domain, self.shape, self.dtype)
    }
}

/// How the rows of one operand select a row of a weight-like operand.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Select {
    /// The weight-like operand is `shared` (one row for all), or has the same domain as the
    /// other operand (row i with row i).
    Same,
    /// An edge or compact row selects the row of its relation.
    Relation,
    /// A node row selects the row of its node type.
    NodeType,
    /// An edge or compact row selects the row of its source node's type.
    SrcType,
    /// An edge or compact row selects the row of its destination node's type.
    DstType,
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Select::Same => "same",
            Select::Relation => "relation",
            Select::NodeType => "ntype",
            Select::SrcType => "src.ntype",
            Select::DstType => "dst.ntype",
        })
    }
}

/// How rows of a target domain read rows of a source domain.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// Edge (or compact row) reads the node at this endpoint.
    Node(Endpoint),
    /// Edge reads its row in the compact table of this endpoint (the edge-to-row index).
    EdgeToCompact(Endpoint),
    /// A compact row of this endpoint reads the node it is keyed by.
    CompactNode(Endpoint),
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Index::Node(e) => write!(f, "{e}"),
            Index::EdgeToCompact(e) => write!(f, "compact.{e}"),
            Index::CompactNode(e) => write!(f, "node.{e}"),
        }
    }
}

/// Element-wise functions of one operand.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `max(x, 0)`
    Relu,
    /// `x if x > 0 else slope * x`
    LeakyRelu(f64),
    /// `x if x > 0 else alpha * (exp(x) - 1)`
    Elu(f64),
    /// exact (erf) GELU: `x * Phi(x)`
    Gelu,
    /// `tanh(x)`
    Tanh,
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `exp(x)`
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
}

impl UnaryOp {
    /// The function's name in both the language and the text IR.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Elu(_) => "elu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
        }
    }
}

/// Element-wise functions of two operands, with broadcasting (see [`crate::shape::broadcast`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)`
    Max,
}

impl BinaryOp {
    /// The operator's name in the text IR.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
        }
    }
}

/// Reductions over the incoming edges of each destination node.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AggOp {
    /// Sum (0 for a node without incoming edges).
    Sum,
    /// Mean (0 for a node without incoming edges).
    Mean,
    /// Element-wise maximum (0 for a node without incoming edges, as PyG's scatter max).
    Max,
}

impl AggOp {
    /// The reduction's name in the language and the text IR.
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Mean => "mean",
            AggOp::Max => "max",
        }
    }
}

/// Which edges an aggregation groups together.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AggGroup {
    /// All incoming edges of the destination together.
    All,
    /// Reduce within each (destination, relation) group, then sum over relations
    /// (R-GCN's per-relation mean: `sum_r mean_{E_r(i)}`).
    PerRelation,
}

/// The operators, by family. Operands are earlier values.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A named model input, bound at run time (see [`InputKind`]).
    Input {
        /// The input's name in the model.
        name: String,
        /// What binds it.
        kind: InputKind,
    },
    /// A declared weight, as a value in the weight's domain.
    Weight(WeightId),
    /// A shared scalar constant.
    Const(f64),
    /// Rows of the result read rows of `x` through `index` (`src.h`, compact rows to edges).
    Gather {
        /// The value read.
        x: ValueId,
        /// The index mapping result rows to rows of `x`.
        index: Index,
    },
    /// Rows of a weight-like `w` selected per row of the result's domain (`a[relation]` used
    /// as an edge value).
    Slice {
        /// The weight-like value.
        w: ValueId,
        /// The selector.
        by: Select,
        /// The domain of the result.
        domain: Domain,
    },
    /// Typed linear: each row of `x` times the weight slice its row selects.
    /// Shapes: `[K] x [K, N..] -> [N..]`, `[B.., K] x [B.., K, N] -> [B.., N]` (per head),
    /// `[B.., K] x [K, N] -> [B.., N]` (same weight for every head).
    Linear {
        /// Row operand.
        x: ValueId,
        /// Weight-like operand.
        w: ValueId,
        /// How rows of `x` select slices of `w`.
        by: Select,
    },
    /// Element-wise function of one value.
    Unary {
        /// The function.
        op: UnaryOp,
        /// The operand.
        x: ValueId,
    },
    /// Element-wise function of two values of the same domain (or one `shared`).
    Binary {
        /// The function.
        op: BinaryOp,
        /// Left operand.
        a: ValueId,
        /// Right operand.
        b: ValueId,
    },
    /// Dot product over the last axis: `[B.., K] . [B.., K] -> [B..]`.
    Dot {
        /// Left operand.
        a: ValueId,
        /// Right operand.
        b: ValueId,
    },
    /// Reinterpret each row with another shape of the same number of elements.
    View {
        /// The operand.
        x: ValueId,
        /// The new per-row shape.
        shape: Shape,
    },
    /// Concatenation along the last axis; leading axes must agree.
    Concat {
        /// The operands, in order.
        xs: Vec<ValueId>,
    },
    /// Softmax of an edge value over each destination's incoming edges, per element.
    EdgeSoftmax {
        /// The edge value (scores).
        x: ValueId,
    },
    /// Reduction of an edge value over each destination's incoming edges into a node value.
    Aggregate {
        /// The reduction.
        op: AggOp,
        /// Grouping of the incoming edges.
        group: AggGroup,
        /// The edge value.
        x: ValueId,
    },

    // Derivative operators: what the autodiff pass (`passes/src/autodiff.rs`) emits besides
    // the forward operators. Each is the transpose or derivative of one forward operator.
    /// The transpose of [`Op::Gather`]: each row of the domain a gather by `index` reads sums
    /// the rows of `x` that read it (rows nobody reads are 0). `x` is an edge value for the
    /// node and compact indices, a compact value for `node.src` / `node.dst`.
    Scatter {
        /// The value scattered (in the gather's result domain).
        x: ValueId,
        /// The gather index being transposed.
        index: Index,
    },
    /// The transpose of [`Op::Slice`]: each row of the weight-like `domain` sums the rows of
    /// `x` that select it by `by`.
    SliceSum {
        /// The row value.
        x: ValueId,
        /// The selector of the slice being transposed.
        by: Select,
        /// The weight-like domain of the result.
        domain: Domain,
    },
    /// Sums each row down to `shape`, a shape that broadcasts to the row's shape (the
    /// transpose of broadcasting).
    SumTo {
        /// The operand.
        x: ValueId,
        /// The per-row shape of the result.
        shape: Shape,
    },
    /// Swaps the last two axes of each row (`[.., K, N] -> [.., N, K]`).
    Transpose {
        /// The operand (rank at least 2).
        x: ValueId,
    },
    /// The weight gradient of [`Op::Linear`]: for each row `s` of the weight-like `domain`,
    /// the sum over the rows `i` of `x` that select `s` by `by` of the outer product of `x_i`
    /// and `dy_i`, contracted as the linear's form with a weight of per-row `shape` says.
    LinearGrad {
        /// The linear's row operand.
        x: ValueId,
        /// The adjoint of the linear's result.
        dy: ValueId,
        /// The linear's selector.
        by: Select,
        /// The weight's domain.
        domain: Domain,
        /// The weight's per-row shape.
        shape: Shape,
    },
    /// `dy * f'(x)`, element-wise.
    UnaryGrad {
        /// The function differentiated.
        op: UnaryOp,
        /// The function's operand.
        x: ValueId,
        /// The adjoint of the function's result.
        dy: ValueId,
    },
    /// A scalar per edge: the number of edges in its aggregation group (its destination's
    /// incoming edges, or those of its relation among them). What a mean divides by.
    GroupSize {
        /// The grouping.
        group: AggGroup,
    },
    /// The adjoint of a max aggregation's edge operand: per element, the destination's `dy`
    /// goes to the first incoming edge (of the group) whose `x` attains the maximum; other
    /// edges get 0.
    MaxGrad {
        /// The grouping of the aggregation.
        group: AggGroup,
        /// The aggregation's edge operand.
        x: ValueId,
        /// The adjoint of the aggregation's node result.
        dy: ValueId,
    },
    /// Elements `start..start + len` of the last axis (the adjoint of one concat operand).
    Narrow {
        /// The operand.
        x: ValueId,
        /// First element kept.
        start: usize,
        /// Number of elements kept.
        len: usize,
    },
}

impl Op {
    /// The operands of this instruction, in order.
    pub fn operands(&self) -> Vec<ValueId> {
        self.clone().operands_mut().into_iter().map(|v| *v).collect()
    }

    /// The operands of this instruction, in order, for rewriting in place.
    pub fn operands_mut(&mut self) -> Vec<&mut ValueId> {
        match self {
            Op::Input { .. } | Op::Weight(_) | Op::Const(_) | Op::GroupSize { .. } => Vec::new(),
            Op::Gather { x, .. }
            | Op::Unary { x, .. }
            | Op::View { x, .. }
            | Op::EdgeSoftmax { x }
            | Op::Aggregate { x, .. }
            | Op::Scatter { x, .. }
            | Op::SliceSum { x, .. }
            | Op::SumTo { x, .. }
            | Op::Transpose { x }
            | Op::Narrow { x, .. } => vec![x],
            Op::Slice { w, .. } => vec![w],
            Op::Linear { x, w, .. } => vec![x, w],
            Op::Binary { a, b, .. } | Op::Dot { a, b } => vec![a, b],
            Op::LinearGrad { x, dy, .. }
            | Op::UnaryGrad { x, dy, .. }
            | Op::MaxGrad { x, dy, .. } => {
                vec![x, dy]
            }
            Op::Concat { xs } => xs.iter_mut().collect(),
        }
    }

    /// Whether this is one of the derivative operators only the autodiff pass emits
    /// ([`Op::Scatter`] to [`Op::Narrow`]), which have no kernel template yet.
    pub fn is_derivative(&self) -> bool {
        matches!(
            self,
            Op::Scatter { .. }
                | Op::SliceSum { .. }
                | Op::SumTo { .. }
                | Op::Transpose { .. }
                | Op::LinearGrad { .. }
                | Op::UnaryGrad { .. }
                | Op::GroupSize { .. }
                | Op::MaxGrad { .. }
                | Op::Narrow { .. }
        )
    }
}

/// One instruction: an operator, its result type, and the source-level name it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    /// The operator.
    pub op: Op,
    /// The type of the result.
    pub ty: Type,
    /// The name the model gave this value (`z`, `l1.out`), if any; for reading dumps only.
    pub name: Option<String>,
}

/// How a weight is sliced.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WeightKind {
    /// One tensor shared by everything.
    Shared,
    /// One tensor per relation.
    PerRelation,
    /// One tensor per node type.
    PerNodeType,
}

impl WeightKind {
    /// The domain of a value holding this weight.
    pub fn domain(self) -> Domain {
        match self {
            WeightKind::Shared => Domain::Shared,
            WeightKind::PerRelation => Domain::Relation,
            WeightKind::PerNodeType => Domain::NodeType,
        }
    }
}

/// A declared weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// The weight's name, qualified by layer (`l1.W`); the key in safetensors files.
    pub name: String,
    /// How the weight is sliced.
    pub kind: WeightKind,
    /// The shape of one slice.
    pub shape: Shape,
    /// How it is initialised when not loaded.
    pub init: Init,
}

/// Deterministic weight initialisation.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Init {
    /// Glorot (Xavier) uniform over fan-in (first axis) and fan-out (the rest).
    Glorot,
    /// All zeros (biases).
    Zeros,
    /// All ones.
    Ones,
}

impl Init {
    /// The name in the language and text IR.
    pub fn name(self) -> &'static str {
        match self {
            Init::Glorot => "glorot",
            Init::Zeros => "zeros",
            Init::Ones => "ones",
        }
    }
}

/// What an [`Op::Input`] is and who gives its values.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum InputKind {
    /// Data: graph features and graph-derived values, or seeded random values.
    Data,
    /// A learned table, one trainable row per node (`weight E: node[d]`) or per (node,
    /// relation) pair of an endpoint (`weight E[relation]: node[d]`, a `compact` value): a
    /// parameter that training updates, initialised by the `Init` when not loaded.
    Table(Init),
    /// The mask of `dropout(x, p)` with drop probability `p`, shaped like `x`: while training,
    /// each element is 0 with probability `p` and `1 / (1 - p)` otherwise, drawn afresh every
    /// step; all ones otherwise (inference).
    Dropout(f64),
}

/// A named model input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    /// The name.
    pub name: String,
    /// Its domain (`node`, `edge`, or `compact` for a per-(node, relation) table), per-row
    /// shape, dtype.
    pub ty: Type,
    /// What it is.
    pub kind: InputKind,
}

/// One model, instantiated: the unit every pass and back end works on.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    /// The model's name.
    pub name: String,
    /// The integer parameters it was instantiated with, in declaration order.
    pub params: Vec<(String, i64)>,
    /// Declared weights.
    pub weights: Arena<WeightId, Weight>,
    /// Instructions in definition (topological) order.
    pub insts: Arena<ValueId, Inst>,
    /// Named outputs.
    pub outputs: Vec<(String, ValueId)>,
}

impl Module {
    /// The type of value `v`.
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.insts[v].ty
    }
    /// The model's inputs, in definition order.
    pub fn inputs(&self) -> Vec<InputDecl> {
        self.insts
            .values()
            .filter_map(|inst| match &inst.op {
                Op::Input { name, kind } => {
                    Some(InputDecl { name: name.clone(), ty: inst.ty.clone(), kind: *kind })
                }
                _ => None,
            })
            .collect()
    }
    /// Looks up a weight by name.
    pub fn weight_by_name(&self, name: &str) -> Option<WeightId> {
        self.weights.iter().find(|(_, w)| w.name == name).map(|(id, _)| id)
    }
}
