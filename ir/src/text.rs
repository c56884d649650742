//! The exact text form of the inter-operator IR: [`print()`] writes it, and
//! [`parse_module`](crate::parse::parse_module) reads it back into an equal [`Module`].
//!
//! One statement per line: the model header, the weight declarations, the instructions in
//! definition order, the outputs. Every instruction states its result type after `:`, and the
//! source-level name it came from, if any, after `;`.
//!
//! ```text
//! model rgat(in_dim = 4, out_dim = 2, heads = 1)
//!
//! weight w0 "W": relation [4, 1, 2] glorot
//! weight w1 "a_src": relation [1, 2] glorot
//!
//! v0 = input "h"                    : node [4] f32
//! v1 = weight w0                    : relation [4, 1, 2] f32
//! v2 = weight w1                    : relation [1, 2] f32
//! v3 = gather v0 by src             : edge [4] f32
//! v4 = linear v3, v1 by relation    : edge [1, 2] f32  ; z
//! v5 = slice v2 by relation to edge : edge [1, 2] f32
//! v6 = dot v4, v5                   : edge [1] f32
//! v7 = leaky_relu(0.2) v6           : edge [1] f32     ; score
//! v8 = softmax v7                   : edge [1] f32     ; alpha
//! v9 = mul v8, v4                   : edge [1, 2] f32
//! v10 = aggregate sum v9            : node [1, 2] f32  ; out
//!
//! output "out" = v10
//! ```
//!
//! # Grammar
//!
//! Blank lines are ignored, `//` starts a comment that runs to the end of the line (outside
//! strings), and tokens are separated by optional spaces or tabs.
//!
//! ```text
//! module  := header { weight | inst | output }      (statements after the header in any order)
//! header  := "model" name "(" [ param { "," param } ] ")"
//! param   := name "=" INT                           (INT may be negative)
//! weight  := "weight" WID STRING ":" wkind shape init
//! wkind   := "shared" | "relation" | "ntype"
//! init    := "glorot" | "zeros" | "ones"
//! inst    := VID "=" op ":" type [ ";" name ]
//! output  := "output" STRING "=" VID
//! type    := domain shape dtype
//! domain  := "node" | "edge" | "compact.src" | "compact.dst" | "shared" | "relation" | "ntype"
//! shape   := "[" [ UINT { "," UINT } ] "]"
//! dtype   := "f32" | "f64"
//! op      := "input" STRING
//!          | "weight" WID
//!          | "const" FLOAT
//!          | "gather" VID "by" index
//!          | "slice" VID "by" select "to" domain
//!          | "linear" VID "," VID "by" select
//!          | unary VID
//!          | binary VID "," VID
//!          | "dot" VID "," VID
//!          | "view" VID "as" shape
//!          | "concat" [ VID { "," VID } ]
//!          | "softmax" VID
//!          | "aggregate" agg [ "per_relation" ] VID
//!          | "scatter" VID "by" index                  (derivative operators, from autodiff)
//!          | "slice_sum" VID "by" select "to" domain
//!          | "sum_to" VID "as" shape
//!          | "transpose" VID
//!          | "linear_grad" VID "," VID "by" select "to" domain shape
//!          | "grad" unary VID "," VID
//!          | "group_size" [ "per_relation" ]
//!          | "max_grad" [ "per_relation" ] VID "," VID
//!          | "narrow" VID "from" UINT "len" UINT
//! index   := "src" | "dst" | "compact.src" | "compact.dst" | "node.src" | "node.dst"
//! select  := "same" | "relation" | "ntype" | "src.ntype" | "dst.ntype"
//! unary   := "neg" | "relu" | "leaky_relu" "(" FLOAT ")" | "elu" "(" FLOAT ")" | "gelu"
//!          | "tanh" | "sigmoid" | "exp" | "log" | "sqrt"
//! binary  := "add" | "sub" | "mul" | "div" | "max"
//! agg     := "sum" | "mean" | "max"
//! name    := IDENT | STRING
//! IDENT   := [A-Za-z_][A-Za-z0-9_.]*
//! VID     := "v" DIGITS        WID := "w" DIGITS
//! STRING  := '"' { char | '\\' | '\"' | '\n' | '\t' | '\r' | '\u{' HEX '}' } '"'
//! FLOAT   := what Rust's f64::from_str accepts (1, -0.5, 1e-7, inf, -inf, NaN)
//! ```
//!
//! The ids of the `n`-th weight and the `n`-th instruction must be `wn` and `vn`: they are
//! positions, written out for the reader. Floats print in Rust's shortest round-trip form, so
//! they read back bit for bit. Names print bare when they are an IDENT, quoted otherwise;
//! input, weight and output names are always quoted.

use crate::inter::InputKind;
use crate::inter::{AggGroup, Module, Op, UnaryOp, Weight, WeightKind};
use std::fmt::{self, Write};

/// Instructions are padded to this many characters at most before their type, so that types
/// line up in a readable column without long instructions pushing every line wide.
const TYPE_COLUMN_MAX: usize = 36;

/// Likewise for the source names after `;` (aligned over the lines that have one).
const NAME_COLUMN_MAX: usize = 72;

/// The module's text form, ending with a newline. Parsing it gives back an equal module.
pub fn print(module: &Module) -> String {
    let mut out = String::new();
    out.push_str("model ");
    out.push_str(&name(&module.name));
    out.push('(');
    for (i, (p, v)) in module.params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{} = {v}", name(p));
    }
    out.push_str(")\n");
    if !module.weights.is_empty() {
        out.push('\n');
        for (id, w) in module.weights.iter() {
            let _ = writeln!(out, "weight {id} {}", weight_decl(w));
        }
    }
    if !module.insts.is_empty() {
        out.push('\n');
        let ops: Vec<String> =
            module.insts.iter().map(|(v, i)| format!("{v} = {}", op(&i.op))).collect();
        let op_width = column(ops.iter().map(String::as_str), TYPE_COLUMN_MAX);
        let typed: Vec<String> = ops
            .iter()
            .zip(module.insts.values())
            .map(|(head, inst)| format!("{head:<op_width$} : {}", inst.ty))
            .collect();
        let named = typed.iter().zip(module.insts.values()).filter(|(_, i)| i.name.is_some());
        let ty_width = column(named.map(|(l, _)| l.as_str()), NAME_COLUMN_MAX);
        for (line, inst) in typed.iter().zip(module.insts.values()) {
            match &inst.name {
                Some(n) => {
                    let _ = writeln!(out, "{line:<ty_width$}  ; {}", name(n));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    if !module.outputs.is_empty() {
        out.push('\n');
        for (n, v) in &module.outputs {
            let _ = writeln!(out, "output {} = {v}", quote(n));
        }
    }
    out
}

impl fmt::Display for Module {
    /// The text form of [`print()`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print(self))
    }
}

/// The width to pad `lines` to: the longest of them not longer than `max`.
pub(crate) fn column<'a>(lines: impl Iterator<Item = &'a str>, max: usize) -> usize {
    lines.map(|l| l.chars().count()).filter(|&n| n <= max).max().unwrap_or(0)
}

/// `"W": relation [64, 1, 64] glorot` (what follows the id in a weight declaration).
pub(crate) fn weight_decl(w: &Weight) -> String {
    let kind = match w.kind {
        WeightKind::Shared => "shared",
        WeightKind::PerRelation => "relation",
        WeightKind::PerNodeType => "ntype",
    };
    format!("{}: {kind} {} {}", quote(&w.name), w.shape, w.init.name())
}

/// The operator part of an instruction line (between `=` and `:`).
pub fn op(op: &Op) -> String {
    match op {
        Op::Input { name, kind: InputKind::Data } => format!("input {}", quote(name)),
        Op::Input { name, kind: InputKind::Table(init) } => {
            format!("input {} learned {}", quote(name), init.name())
        }
        Op::Input { name, kind: InputKind::Dropout(p) } => {
            format!("input {} dropout {p:?}", quote(name))
        }
        Op::Weight(w) => format!("weight {w}"),
        Op::Const(c) => format!("const {c:?}"),
        Op::Gather { x, index } => format!("gather {x} by {index}"),
        Op::Slice { w, by, domain } => format!("slice {w} by {by} to {domain}"),
        Op::Linear { x, w, by } => format!("linear {x}, {w} by {by}"),
        Op::Unary { op, x } => format!("{} {x}", unary(*op)),
        Op::Binary { op, a, b } => format!("{} {a}, {b}", op.name()),
        Op::Dot { a, b } => format!("dot {a}, {b}"),
        Op::View { x, shape } => format!("view {x} as {shape}"),
        Op::Concat { xs } => {
            let list: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
            if list.is_empty() {
                "concat".to_string()
            } else {
                format!("concat {}", list.join(", "))
            }
        }
        Op::EdgeSoftmax { x } => format!("softmax {x}"),
        Op::Aggregate { op, group, x } => match group {
            AggGroup::All => format!("aggregate {} {x}", op.name()),
            AggGroup::PerRelation => format!("aggregate {} per_relation {x}", op.name()),
        },
        Op::Scatter { x, index } => format!("scatter {x} by {index}"),
        Op::SliceSum { x, by, domain } => format!("slice_sum {x} by {by} to {domain}"),
        Op::SumTo { x, shape } => format!("sum_to {x} as {shape}"),
        Op::Transpose { x } => format!("transpose {x}"),
        Op::LinearGrad { x, dy, by, domain, shape } => {
            format!("linear_grad {x}, {dy} by {by} to {domain} {shape}")
        }
        Op::UnaryGrad { op, x, dy } => format!("grad {} {x}, {dy}", unary(*op)),
        Op::GroupSize { group } => format!("group_size{}", per_relation(*group)),
        Op::MaxGrad { group, x, dy } => format!("max_grad{} {x}, {dy}", per_relation(*group)),
        Op::Narrow { x, start, len } => format!("narrow {x} from {start} len {len}"),
    }
}

/// ` per_relation` for a per-relation grouping, nothing otherwise.
fn per_relation(group: AggGroup) -> &'static str {
    match group {
        AggGroup::All => "",
        AggGroup::PerRelation => " per_relation",
    }
}

/// A unary function with its parameter: `relu`, `leaky_relu(0.2)`.
pub fn unary(op: UnaryOp) -> String {
    match op {
        UnaryOp::LeakyRelu(p) | UnaryOp::Elu(p) => format!("{}({p:?})", op.name()),
        _ => op.name().to_string(),
    }
}

/// Whether `s` prints bare as a name: `[A-Za-z_][A-Za-z0-9_.]*`.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `s` bare when it is an identifier, quoted otherwise.
pub fn name(s: &str) -> String {
    if is_ident(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// `s` in double quotes, with `\\`, `\"`, `\n`, `\t`, `\r` and other control characters
/// (`\u{1b}`) escaped, so that it stays on one line.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
