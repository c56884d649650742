//! The abstract syntax tree of a `.rgnn` file; every node carries the [`Span`] it was parsed from.

use std::fmt;

/// A range of bytes `start..end` in the source text.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A name as written, with its span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The identifier text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A whole source file: a sequence of models.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// The models, in source order.
    pub models: Vec<Model>,
}

/// `model NAME(PARAMS) { STATEMENTS }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: Ident,
    /// Its integer parameters, in declaration order.
    pub params: Vec<Param>,
    /// Its statements, in source order.
    pub stmts: Vec<Stmt>,
    /// The whole model.
    pub span: Span,
}

/// A model parameter, `out_dim = 64` or `heads`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The parameter's name.
    pub name: Ident,
    /// The default value and its span, if any.
    pub default: Option<(i64, Span)>,
    /// The whole parameter.
    pub span: Span,
}

/// Whether a value has one row per node or one per edge.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// One row per node.
    Node,
    /// One row per edge.
    Edge,
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RowKind::Node => "node",
            RowKind::Edge => "edge",
        })
    }
}

/// How a declared weight is sliced: `W`, `W[relation]`, `W[ntype]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WeightSlicing {
    /// One tensor shared by everything.
    Shared,
    /// One tensor per relation.
    Relation,
    /// One tensor per node type.
    NodeType,
}

/// A statement of a model body.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What the statement says.
    pub kind: StmtKind,
    /// The whole statement, keyword to `;`.
    pub span: Span,
}

/// The statements of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `input h: node[d];`
    Input {
        /// The input's name.
        name: Ident,
        /// Node or edge rows.
        rows: RowKind,
        /// Per-row shape (empty: one scalar per row).
        shape: Vec<DimExpr>,
    },
    /// `weight W[relation]: [a, b] = zeros;`, or a learned table `weight E[relation]: node[d];`
    Weight {
        /// The weight's name.
        name: Ident,
        /// How it is sliced, with the span of the `[relation]` part (the name's span if shared).
        slicing: (WeightSlicing, Span),
        /// Whether it is declared `node[...]`: a table of one row per node (per (node,
        /// relation) pair when sliced by relation), whose row shape `shape` is.
        per_node: bool,
        /// The shape of one slice (of one row for a table).
        shape: Vec<DimExpr>,
        /// The initialiser's name, if given.
        init: Option<Ident>,
    },
    /// `edge m = EXPR;` or `node y = EXPR;`
    Def {
        /// Whether it defines a node or an edge value.
        rows: RowKind,
        /// The defined name.
        name: Ident,
        /// The definition.
        value: Expr,
    },
    /// `layer l1 = rgcn(in_dim = 16)(h, norm);`
    Layer {
        /// The layer's name.
        name: Ident,
        /// The instantiated model.
        model: Ident,
        /// Parameter arguments `name = dim`.
        args: Vec<ParamArg>,
        /// The values bound to the callee's inputs, in order.
        inputs: Vec<ValueRef>,
    },
    /// `output y, l1.z;`
    Output {
        /// The outputs, in order.
        values: Vec<ValueRef>,
    },
}

/// `name = DIM` in a layer statement.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamArg {
    /// The callee's parameter.
    pub name: Ident,
    /// Its value, in the caller's parameters.
    pub value: DimExpr,
    /// The whole argument.
    pub span: Span,
}

/// A reference to a named value: `h` or `l1.out`.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueRef {
    /// The name, or the layer's name.
    pub name: Ident,
    /// The layer output's name, for `l1.out`.
    pub field: Option<Ident>,
    /// The whole reference.
    pub span: Span,
}

impl fmt::Display for ValueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}.{}", self.name.name, field.name),
            None => f.write_str(&self.name.name),
        }
    }
}

/// An integer expression over parameters (a dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct DimExpr {
    /// The expression.
    pub kind: DimKind,
    /// Where it was written.
    pub span: Span,
}

/// The forms of a dimension expression.
#[derive(Clone, Debug, PartialEq)]
pub enum DimKind {
    /// An integer literal.
    Int(i64),
    /// A parameter.
    Param(Ident),
    /// `a + b`, `a - b`, `a * b`, `a / b`.
    Binary(BinOp, Box<DimExpr>, Box<DimExpr>),
}

/// Binary operators of both expression kinds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `@` (value expressions only)
    MatMul,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
        }
    }
}

/// A value expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// The expression.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Which slice of a per-relation or per-type weight: `[relation]`, `[ntype]`, `[src.ntype]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SliceSel {
    /// `[relation]`: the edge's relation.
    Relation,
    /// `[ntype]`: the node's type.
    NodeType,
    /// `[src.ntype]`: the edge source's type.
    SrcType,
    /// `[dst.ntype]`: the edge destination's type.
    DstType,
}

impl fmt::Display for SliceSel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SliceSel::Relation => "relation",
            SliceSel::NodeType => "ntype",
            SliceSel::SrcType => "src.ntype",
            SliceSel::DstType => "dst.ntype",
        })
    }
}

/// `src` or `dst`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum End {
    /// The edge's source.
    Src,
    /// The edge's destination.
    Dst,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Src => "src",
            End::Dst => "dst",
        })
    }
}

impl Expr {
    /// The binary expression `a op b` spanning `l..r`.
    pub fn binary(op: BinOp, a: Expr, b: Expr, l: usize, r: usize) -> Expr {
        Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), span: Span::new(l, r) }
    }
}

/// The forms of a value expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal (a constant).
    Int(i64),
    /// A decimal literal.
    Float(f64),
    /// A named value, parameter, weight or layer: `h`, `l1.out`.
    Ref(ValueRef),
    /// `src.h`, `dst.l1.out`: a node value read at an edge's endpoint.
    Endpoint(End, ValueRef),
    /// `W[relation]`: a slice of a per-relation or per-type weight.
    Slice {
        /// The weight.
        weight: Ident,
        /// Which slice.
        sel: SliceSel,
        /// Span of the selector inside the brackets.
        sel_span: Span,
    },
    /// `src.E[relation]`: the row of a per-relation table at an edge's endpoint, for the
    /// edge's relation.
    TableSlice {
        /// Which endpoint.
        end: End,
        /// The table.
        table: Ident,
        /// Which slice (only `relation` is legal).
        sel: SliceSel,
        /// Span of the selector inside the brackets.
        sel_span: Span,
    },
    /// `-x`
    Neg(Box<Expr>),
    /// `a + b`, ..., `x @ W`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, b)`.
    Call {
        /// The function.
        func: Ident,
        /// The arguments.
        args: Vec<Arg>,
    },
}

/// A call argument: a value, or a shape list (the second argument of `view`).
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A value expression.
    Value(Expr),
    /// `[h, d]`.
    Shape(Vec<DimExpr>, Span),
}

impl Arg {
    /// Where the argument was written.
    pub fn span(&self) -> Span {
        match self {
            Arg::Value(e) => e.span,
            Arg::Shape(_, s) => *s,
        }
    }
}
