//! Element-wise operators as C expressions over `float` operands (helpers in
//! `cuda/common.cuh`), with the CPU back end's semantics.

use crate::index::float_literal;
use pigeon_ir::{BinaryOp, UnaryOp};

/// `op(x)` as a C expression.
pub fn unary_expr(op: UnaryOp, x: &str) -> String {
    match op {
        UnaryOp::Neg => format!("(-{x})"),
        UnaryOp::Relu => format!("pg::relu({x})"),
        UnaryOp::LeakyRelu(s) => format!("pg::leaky_relu({x}, {})", float_literal(s)),
        UnaryOp::Elu(a) => format!("pg::elu({x}, {})", float_literal(a)),
        UnaryOp::Gelu => format!("pg::gelu({x})"),
        UnaryOp::Tanh => format!("tanhf({x})"),
        UnaryOp::Sigmoid => format!("pg::sigmoid({x})"),
        UnaryOp::Exp => format!("expf({x})"),
        UnaryOp::Log => format!("logf({x})"),
        UnaryOp::Sqrt => format!("sqrtf({x})"),
    }
}

/// `op(a, b)` as a C expression.
pub fn binary_expr(op: BinaryOp, a: &str, b: &str) -> String {
    match op {
        BinaryOp::Add => format!("({a} + {b})"),
        BinaryOp::Sub => format!("({a} - {b})"),
        BinaryOp::Mul => format!("({a} * {b})"),
        BinaryOp::Div => format!("({a} / {b})"),
        BinaryOp::Max => format!("fmaxf({a}, {b})"),
    }
}
