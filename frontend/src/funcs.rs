//! The built-in functions of the language: their names, argument counts and IR operators, in one
//! table used by both the checker and the lowering.

use pigeon_ir::{AggGroup, AggOp, UnaryOp};

/// What a built-in function does.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Func {
    /// An element-wise activation of one argument (`relu`, ..., `sqrt`).
    Unary(UnaryOp),
    /// `leaky_relu(x, slope = 0.01)`
    LeakyRelu,
    /// `elu(x, alpha = 1.0)`
    Elu,
    /// `dropout(x, p)`: `x` times a fresh mask every training step, the identity otherwise.
    Dropout,
    /// `maximum(a, b)`
    Maximum,
    /// `dot(a, b)`
    Dot,
    /// `view(x, [dims])`
    View,
    /// `concat(a, b, ...)`
    Concat,
    /// `softmax(e)`: edge softmax.
    Softmax,
    /// `sum`, `mean`, `max`, `mean_per_relation`: edge-to-node aggregations.
    Aggregate(AggOp, AggGroup),
}

/// Every built-in function by name.
pub const FUNCS: &[(&str, Func)] = &[
    ("relu", Func::Unary(UnaryOp::Relu)),
    ("gelu", Func::Unary(UnaryOp::Gelu)),
    ("tanh", Func::Unary(UnaryOp::Tanh)),
    ("sigmoid", Func::Unary(UnaryOp::Sigmoid)),
    ("exp", Func::Unary(UnaryOp::Exp)),
    ("log", Func::Unary(UnaryOp::Log)),
    ("sqrt", Func::Unary(UnaryOp::Sqrt)),
    ("leaky_relu", Func::LeakyRelu),
    ("elu", Func::Elu),
    ("dropout", Func::Dropout),
    ("maximum", Func::Maximum),
    ("dot", Func::Dot),
    ("view", Func::View),
    ("concat", Func::Concat),
    ("softmax", Func::Softmax),
    ("sum", Func::Aggregate(AggOp::Sum, AggGroup::All)),
    ("mean", Func::Aggregate(AggOp::Mean, AggGroup::All)),
    ("max", Func::Aggregate(AggOp::Max, AggGroup::All)),
    ("mean_per_relation", Func::Aggregate(AggOp::Mean, AggGroup::PerRelation)),
];

impl Func {
    /// The function called `name`, if it exists.
    pub fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
    /// The smallest and largest number of arguments (`None`: no upper bound).
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::Unary(_) | Func::Softmax | Func::Aggregate(..) => (1, Some(1)),
            Func::LeakyRelu | Func::Elu => (1, Some(2)),
            Func::Maximum | Func::Dot | Func::View | Func::Dropout => (2, Some(2)),
            Func::Concat => (2, None),
        }
    }
    /// How the arguments are described in an arity error.
    pub fn signature(self, name: &str) -> String {
        match self {
            Func::LeakyRelu => "leaky_relu(x) or leaky_relu(x, slope)".into(),
            Func::Elu => "elu(x) or elu(x, alpha)".into(),
            Func::Dropout => "dropout(x, p)".into(),
            Func::Maximum | Func::Dot => format!("{name}(a, b)"),
            Func::View => "view(x, [dims])".into(),
            Func::Concat => "concat(a, b, ...)".into(),
            _ => format!("{name}(x)"),
        }
    }
}
