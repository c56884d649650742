//! The exact text form of kernel plans: [`print_plan`] writes it, and
//! [`parse_plan`](crate::plan_parse::parse_plan) reads it back into an equal [`Plan`].
//!
//! One declaration per line, except the body of a traversal, which takes one line per statement
//! between `{` and `}`: the plan header, the weights (as in the inter-operator IR's text form),
//! the buffers, the layouts, the kernels in execution order, the outputs.
//!
//! ```text
//! plan rgat(dim = 4)
//!
//! weight w0 "W": relation [4, 4] glorot
//! weight w1 "a": relation [4] glorot
//!
//! buffer b0 "h": nodes [4] f32 input "h"
//! buffer b1 "W": relations [4, 4] f32 weight w0
//! buffer b2 "a": relations [4] f32 weight w1
//! buffer b3 "z": edges [4] f32 temp slot 0
//! buffer b4 "out": nodes [4] f32 output "out"
//!
//! layouts edges_by_relation, in_csr
//!
//! k0 = gemm rows edges segment relation a b0 gather src b b1 plain(k=4, n=4) c b3 write
//! k1 = traversal node_parallel {
//!     r0 = edge load b3 this       : [4]
//!     r1 = edge load b2 relation   : [4]
//!     r2 = edge dot r0, r1         : []
//!     r3 = edge leaky_relu(0.2) r2 : []
//!     r4 = edge softmax r3         : []
//!     r5 = edge mul r4, r0         : [4]
//!     r6 = node aggregate sum r5   : [4]
//!     r7 = node relu r6            : [4]
//!     r8 = node store b4 r7 write  : []
//! }
//!
//! output "out" = b4
//! ```
//!
//! # Grammar
//!
//! Lexical rules are those of the inter-operator IR (`text.rs`): blank lines are ignored, `//`
//! starts a comment, IDENT, STRING, FLOAT, `shape`, `select`, `unary`, `binary` and `agg` are
//! defined there.
//!
//! ```text
//! plan    := header { weight | buffer | layouts | kernel | output }   (any order after header)
//! header  := "plan" name "(" [ param { "," param } ] ")"
//! weight  := "weight" WID STRING ":" wkind shape init                 (as in text.rs)
//! buffer  := "buffer" BID STRING ":" space shape dtype bkind [ "slot" UINT ]
//! bkind   := "input" STRING | "weight" WID | "temp" | "output" STRING
//! space   := "nodes" | "edges" | "compact.src" | "compact.dst" | "relations" | "ntypes" | "one"
//! layouts := "layouts" [ layout { "," layout } ]                     (lines append)
//! layout  := "nodes_by_type" | "edges_by_relation" | "in_csr" | "compact.src" | "compact.dst"
//! kernel  := KID "=" gemm | KID "=" wgrad
//!          | KID "=" "traversal" schedule "{" NEWLINE { stmt NEWLINE } "}"
//! gemm    := "gemm" "rows" space "segment" select "a" BID "gather" index "b" BID form
//!            [ "epilogue" "[" [ epi { "," epi } ] "]" ] "c" BID mode
//! wgrad   := "weight_grad" "rows" space "segment" select "a" ( "one" | BID "gather" index )
//!            "b" BID "gather" index form "c" BID
//! epi     := "scale" BID index | "add" BID index | unary
//! form    := "plain" "(" "k" "=" UINT "," "n" "=" UINT ")"
//!          | ( "batched" | "broadcast" ) "(" "batch" "=" UINT "," "k" "=" UINT "," "n" "=" UINT ")"
//! mode    := "write" | "add_into_dst" | "add_into_src"
//! schedule:= "rows" space | "node_parallel" | "edge_parallel"
//! stmt    := RID "=" level sop ":" shape
//! level   := "edge" | "node"
//! sop     := "load" BID index | "const" FLOAT | unary RID | binary RID "," RID
//!          | "dot" RID "," RID | "view" RID "as" shape | "concat" [ RID { "," RID } ]
//!          | "matvec" RID "," BID "by" select form | "softmax" RID
//!          | "aggregate" agg [ "per_relation" ] RID | "store" BID RID mode
//!          | "grad" unary RID "," RID | "sum_to" RID | "transpose" RID
//!          | "narrow" RID "from" UINT "len" UINT | "group_size" [ "per_relation" ]
//!          | "max_grad" [ "per_relation" ] RID "," RID
//! index   := "this" | "src" | "dst" | "compact.src" | "compact.dst"          (This, Node, EdgeToCompact)
//!          | "same" | "relation" | "ntype" | "src.ntype" | "dst.ntype"      (Select)
//! output  := "output" STRING "=" BID
//! WID := "w" DIGITS   BID := "b" DIGITS   KID := "k" DIGITS   RID := "r" DIGITS
//! ```
//!
//! The `n`-th weight, buffer, kernel and statement of a body must be `wn`, `bn`, `kn` and `rn`.
//! Every statement states its shape, stores included (`[]`). The statements of a body are
//! padded so that their shapes line up (up to a limit); spacing is free when reading.

use crate::inter::AggGroup;
use crate::plan::{
    Buffer, BufferKind, Epilogue, Gemm, Kernel, Layout, Plan, RowIndex, RowSpace, Schedule, Stmt,
    StmtOp, StoreMode, Traversal, WeightGrad,
};
use crate::shape::LinearForm;
use crate::text::{column, name, quote, unary, weight_decl};
use std::fmt::{self, Write};

/// Statement operators are padded to this many characters at most before their shape.
const SHAPE_COLUMN_MAX: usize = 40;

/// The plan's text form, ending with a newline. Parsing it gives back an equal plan.
pub fn print_plan(plan: &Plan) -> String {
    let mut out = String::new();
    out.push_str("plan ");
    out.push_str(&name(&plan.name));
    out.push('(');
    for (i, (p, v)) in plan.params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{} = {v}", name(p));
    }
    out.push_str(")\n");
    if !plan.weights.is_empty() {
        out.push('\n');
        for (id, w) in plan.weights.iter() {
            let _ = writeln!(out, "weight {id} {}", weight_decl(w));
        }
    }
    if !plan.buffers.is_empty() {
        out.push('\n');
        for (id, b) in plan.buffers.iter() {
            let _ = writeln!(out, "buffer {id} {}", buffer_decl(b));
        }
    }
    if !plan.layouts.is_empty() {
        let list: Vec<&str> = plan.layouts.iter().map(|l| layout(*l)).collect();
        let _ = writeln!(out, "\nlayouts {}", list.join(", "));
    }
    if !plan.kernels.is_empty() {
        out.push('\n');
        for (id, k) in plan.kernels.iter() {
            match k {
                Kernel::Gemm(g) => {
                    let _ = writeln!(out, "{id} = {}", gemm(g));
                }
                Kernel::WeightGrad(g) => {
                    let _ = writeln!(out, "{id} = {}", weight_grad(g));
                }
                Kernel::Traversal(t) => traversal(&mut out, &id.to_string(), t),
            }
        }
    }
    if !plan.outputs.is_empty() {
        out.push('\n');
        for (n, b) in &plan.outputs {
            let _ = writeln!(out, "output {} = {b}", quote(n));
        }
    }
    out
}

impl fmt::Display for Plan {
    /// The text form of [`print_plan`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_plan(self))
    }
}

/// `"z": edges [4, 16] f32 temp slot 2` (what follows the id in a buffer declaration).
fn buffer_decl(b: &Buffer) -> String {
    let kind = match &b.kind {
        BufferKind::Input(n) => format!("input {}", quote(n)),
        BufferKind::Weight(w) => format!("weight {w}"),
        BufferKind::Temp => "temp".to_string(),
        BufferKind::Output(n) => format!("output {}", quote(n)),
    };
    let mut s = format!("{}: {} {} {} {kind}", quote(&b.name), row_space(b.rows), b.shape, b.dtype);
    if let Some(slot) = b.slot {
        let _ = write!(s, " slot {slot}");
    }
    s
}

/// The gemm template's text, after `kN = `.
fn gemm(g: &Gemm) -> String {
    let mut s = format!(
        "gemm rows {} segment {} a {} gather {} b {} {}",
        row_space(g.rows),
        g.segment,
        g.a,
        row_index(g.gather),
        g.b,
        form(&g.form)
    );
    if !g.epilogue.is_empty() {
        let list: Vec<String> = g.epilogue.iter().map(epilogue).collect();
        let _ = write!(s, " epilogue [{}]", list.join(", "));
    }
    let _ = write!(s, " c {} {}", g.c, store_mode(g.store));
    s
}

/// The weight-gradient form's text, after `kN = `.
fn weight_grad(g: &WeightGrad) -> String {
    let a = match g.a {
        Some((buf, index)) => format!("{buf} gather {}", row_index(index)),
        None => "one".to_string(),
    };
    format!(
        "weight_grad rows {} segment {} a {a} b {} gather {} {} c {}",
        row_space(g.rows),
        g.segment,
        g.b.0,
        row_index(g.b.1),
        form(&g.form),
        g.c
    )
}

fn epilogue(e: &Epilogue) -> String {
    match e {
        Epilogue::Scale { buf, index } => format!("scale {buf} {}", row_index(*index)),
        Epilogue::Add { buf, index } => format!("add {buf} {}", row_index(*index)),
        Epilogue::Unary(op) => unary(*op),
    }
}

/// A traversal kernel: its header line, one line per statement, and the closing brace.
fn traversal(out: &mut String, id: &str, t: &Traversal) {
    let _ = writeln!(out, "{id} = traversal {} {{", schedule(t.schedule));
    let heads: Vec<String> = t
        .body
        .iter()
        .enumerate()
        .map(|(i, s)| format!("r{i} = {} {}", level(s), stmt_op(&s.op)))
        .collect();
    let width = column(heads.iter().map(String::as_str), SHAPE_COLUMN_MAX);
    for (head, s) in heads.iter().zip(&t.body) {
        let _ = writeln!(out, "    {head:<width$} : {}", s.shape);
    }
    out.push_str("}\n");
}

fn level(s: &Stmt) -> &'static str {
    match s.level {
        crate::plan::Level::Edge => "edge",
        crate::plan::Level::Node => "node",
    }
}

/// The operation of a statement (between the level and the `:`).
pub fn stmt_op(op: &StmtOp) -> String {
    match op {
        StmtOp::Load { buf, index } => format!("load {buf} {}", row_index(*index)),
        StmtOp::Const(c) => format!("const {c:?}"),
        StmtOp::Unary { op, x } => format!("{} {x}", unary(*op)),
        StmtOp::Binary { op, a, b } => format!("{} {a}, {b}", op.name()),
        StmtOp::Dot { a, b } => format!("dot {a}, {b}"),
        StmtOp::View { x, shape } => format!("view {x} as {shape}"),
        StmtOp::Concat { xs } => {
            let list: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
            if list.is_empty() {
                "concat".to_string()
            } else {
                format!("concat {}", list.join(", "))
            }
        }
        StmtOp::MatVec { x, w, select, form: f } => {
            format!("matvec {x}, {w} by {select} {}", form(f))
        }
        StmtOp::Softmax { x } => format!("softmax {x}"),
        StmtOp::Aggregate { op, group, x } => match group {
            AggGroup::All => format!("aggregate {} {x}", op.name()),
            AggGroup::PerRelation => format!("aggregate {} per_relation {x}", op.name()),
        },
        StmtOp::UnaryGrad { op, x, dy } => format!("grad {} {x}, {dy}", unary(*op)),
        StmtOp::SumTo { x } => format!("sum_to {x}"),
        StmtOp::Transpose { x } => format!("transpose {x}"),
        StmtOp::Narrow { x, start, len } => format!("narrow {x} from {start} len {len}"),
        StmtOp::GroupSize { group } => format!("group_size{}", group_suffix(*group)),
        StmtOp::MaxGrad { group, x, dy } => format!("max_grad{} {x}, {dy}", group_suffix(*group)),
        StmtOp::Store { buf, x, mode } => format!("store {buf} {x} {}", store_mode(*mode)),
    }
}

/// `""` or `" per_relation"`.
fn group_suffix(g: AggGroup) -> &'static str {
    match g {
        AggGroup::All => "",
        AggGroup::PerRelation => " per_relation",
    }
}

/// `nodes`, `edges`, `compact.src`, ...
pub(crate) fn row_space(s: RowSpace) -> &'static str {
    match s {
        RowSpace::Nodes => "nodes",
        RowSpace::Edges => "edges",
        RowSpace::Compact(crate::Endpoint::Src) => "compact.src",
        RowSpace::Compact(crate::Endpoint::Dst) => "compact.dst",
        RowSpace::Relations => "relations",
        RowSpace::NodeTypes => "ntypes",
        RowSpace::One => "one",
    }
}

/// `this`, `src`, `compact.dst`, `relation`, ... (one word; selections print as `Select` does).
pub(crate) fn row_index(i: RowIndex) -> String {
    match i {
        RowIndex::This => "this".to_string(),
        RowIndex::Node(e) => e.to_string(),
        RowIndex::EdgeToCompact(e) => format!("compact.{e}"),
        RowIndex::Select(s) => s.to_string(),
    }
}

/// `plain(k=64, n=64)`, `batched(batch=2, k=8, n=4)`, `broadcast(batch=2, k=8, n=4)`.
pub(crate) fn form(f: &LinearForm) -> String {
    match f {
        LinearForm::Plain { k, n } => format!("plain(k={k}, n={n})"),
        LinearForm::Batched { batch, k, n } => format!("batched(batch={batch}, k={k}, n={n})"),
        LinearForm::Broadcast { batch, k, n } => {
            format!("broadcast(batch={batch}, k={k}, n={n})")
        }
    }
}

/// `write`, `add_into_dst`, `add_into_src`, `add_into_compact.src`, `add_into_compact.dst`.
pub(crate) fn store_mode(m: StoreMode) -> &'static str {
    match m {
        StoreMode::Write => "write",
        StoreMode::AddIntoDst => "add_into_dst",
        StoreMode::AddIntoSrc => "add_into_src",
        StoreMode::AddIntoCompact(crate::Endpoint::Src) => "add_into_compact.src",
        StoreMode::AddIntoCompact(crate::Endpoint::Dst) => "add_into_compact.dst",
    }
}

/// `rows SPACE`, `node_parallel` or `edge_parallel`.
pub(crate) fn schedule(s: Schedule) -> String {
    match s {
        Schedule::Rows(space) => format!("rows {}", row_space(space)),
        Schedule::NodeParallel => "node_parallel".to_string(),
        Schedule::EdgeParallel => "edge_parallel".to_string(),
    }
}

/// `in_csr`, `compact.src`, ...
pub(crate) fn layout(l: Layout) -> &'static str {
    match l {
        Layout::NodesByType => "nodes_by_type",
        Layout::EdgesByRelation => "edges_by_relation",
        Layout::InCsr => "in_csr",
        Layout::Compact(crate::Endpoint::Src) => "compact.src",
        Layout::Compact(crate::Endpoint::Dst) => "compact.dst",
    }
}
