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

/// `dy * op'(x)` as a C expression (helpers in `cuda/grad.cuh`), with the CPU back end's
/// `unary_grad` semantics (`relu'(0) = 0`, derivatives at a kink taken from the left).
pub fn unary_grad_expr(op: UnaryOp, x: &str, dy: &str) -> String {
    match op {
        UnaryOp::Neg => format!("(-{dy})"),
        UnaryOp::Relu => format!("pg::relu_grad({x}, {dy})"),
        UnaryOp::LeakyRelu(s) => format!("pg::leaky_relu_grad({x}, {dy}, {})", float_literal(s)),
        UnaryOp::Elu(a) => format!("pg::elu_grad({x}, {dy}, {})", float_literal(a)),
        UnaryOp::Gelu => format!("pg::gelu_grad({x}, {dy})"),
        UnaryOp::Tanh => format!("pg::tanh_grad({x}, {dy})"),
        UnaryOp::Sigmoid => format!("pg::sigmoid_grad({x}, {dy})"),
        UnaryOp::Exp => format!("pg::exp_grad({x}, {dy})"),
        UnaryOp::Log => format!("pg::log_grad({x}, {dy})"),
        UnaryOp::Sqrt => format!("pg::sqrt_grad({x}, {dy})"),
    }
}
