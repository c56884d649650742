//! The parser of the kernel plans' text form (grammar in [`crate::plan_text`]).
//!
//! [`parse_plan`] reads the text line by line with the inter-operator IR's tokenizer and cursor
//! (`parse.rs`), and reports the first problem as [`IrError::Parse`] with its line and column and
//! what was expected. It checks the syntax and the numbering of ids only: the plan it returns
//! may still break the invariants of [`verify_plan`](crate::plan_verify::verify_plan), which
//! callers run (keeping them apart lets tests write plans that do not verify). It never panics,
//! whatever the input.

use crate::entity::EntityId;
use crate::error::IrError;
use crate::inter::{
    AggGroup, AggOp, BinaryOp, DType, Endpoint, Init, Weight, WeightId, WeightKind,
};
use crate::parse::{err, select, tokenize, unary, Cursor, Tok, Token, BINARY, UNARY};
use crate::plan::{
    Buffer, BufferId, BufferKind, Epilogue, Gemm, Kernel, KernelId, Layout, Level, Plan, RegId,
    RowIndex, RowSpace, Schedule, Stmt, StmtOp, StoreMode, Traversal, WeightGrad,
};
use crate::shape::LinearForm;

/// Parses a plan in the text form. Does not verify it.
pub fn parse_plan(text: &str) -> Result<Plan, IrError> {
    let mut p = PlanParser::default();
    for (i, line) in text.lines().enumerate() {
        let tokens = tokenize(line, i + 1)?;
        if tokens.is_empty() {
            continue;
        }
        let end_col = line.chars().count() + 1;
        let mut cur = Cursor { tokens, pos: 0, line: i + 1, end_col };
        p.statement(&mut cur)?;
    }
    let end = text.lines().count() + 1;
    if !p.header_seen {
        return Err(err(end, 1, "expected `plan NAME(...)`, found end of input".into()));
    }
    if let Some((k, _)) = p.open {
        return Err(err(
            end,
            1,
            format!("expected `}}` closing the body of {k}, found end of input"),
        ));
    }
    Ok(p.plan)
}

#[derive(Default)]
struct PlanParser {
    plan: Plan,
    header_seen: bool,
    /// The traversal whose body is being read, with its id.
    open: Option<(KernelId, Traversal)>,
}

/// The first word of the line, or `""`.
fn first_word(cur: &Cursor) -> String {
    match cur.peek() {
        Some(Token { tok: Tok::Ident(s), .. }) => s.clone(),
        _ => String::new(),
    }
}

impl PlanParser {
    fn statement(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        if !self.header_seen {
            if !cur.at_word("plan") {
                return Err(cur.expected("`plan NAME(...)`"));
            }
            return self.header(cur);
        }
        if let Some((k, mut t)) = self.open.take() {
            if cur.at_punct('}') {
                cur.bump();
                cur.end()?;
                self.plan.kernels.push(Kernel::Traversal(t));
                return Ok(());
            }
            t.body.push(stmt(cur, t.body.len())?);
            self.open = Some((k, t));
            return Ok(());
        }
        match first_word(cur).as_str() {
            "plan" => Err(err(
                cur.line,
                cur.col(),
                "a second `plan` header: one text holds one plan".into(),
            )),
            "weight" => self.weight(cur),
            "buffer" => self.buffer(cur),
            "layouts" => self.layouts(cur),
            "output" => self.output(cur),
            s if s.starts_with('k') => self.kernel(cur),
            _ => Err(cur
                .expected("a declaration (`weight`, `buffer`, `layouts`, `kN = ...` or `output`)")),
        }
    }

    fn header(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("plan")?;
        self.plan.name = cur.name("the plan's name")?;
        cur.punct('(')?;
        if !cur.at_punct(')') {
            loop {
                let name = cur.name("a parameter name")?;
                cur.punct('=')?;
                let value = cur.number::<i64>("an integer")?;
                self.plan.params.push((name, value));
                if !cur.at_punct(',') {
                    break;
                }
                cur.bump();
            }
        }
        cur.punct(')')?;
        cur.end()?;
        self.header_seen = true;
        Ok(())
    }

    fn weight(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("weight")?;
        numbered::<WeightId>(cur, 'w', self.plan.weights.len(), "weights")?;
        let name = cur.string("the weight's name (a string)")?;
        cur.punct(':')?;
        let kinds = [WeightKind::Shared, WeightKind::PerRelation, WeightKind::PerNodeType];
        let kind = kinds[cur.one_of(&["shared", "relation", "ntype"])?];
        let shape = cur.shape()?;
        let init =
            [Init::Glorot, Init::Zeros, Init::Ones][cur.one_of(&["glorot", "zeros", "ones"])?];
        cur.end()?;
        self.plan.weights.push(Weight { name, kind, shape, init });
        Ok(())
    }

    fn buffer(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("buffer")?;
        numbered::<BufferId>(cur, 'b', self.plan.buffers.len(), "buffers")?;
        let name = cur.string("the buffer's name (a string)")?;
        cur.punct(':')?;
        let rows = row_space(cur)?;
        let shape = cur.shape()?;
        let dtype = [DType::F32, DType::F64][cur.one_of(&["f32", "f64"])?];
        let kind = match cur.one_of(&["input", "weight", "temp", "output"])? {
            0 => BufferKind::Input(cur.string("the input's name (a string)")?),
            1 => BufferKind::Weight(cur.id('w', "a weight (`w0`, `w1`, ...)")?),
            2 => BufferKind::Temp,
            _ => BufferKind::Output(cur.string("the output's name (a string)")?),
        };
        let slot = if cur.at_word("slot") {
            cur.bump();
            Some(cur.number::<u32>("a slot number")?)
        } else {
            None
        };
        cur.end()?;
        self.plan.buffers.push(Buffer { name, rows, shape, dtype, kind, slot });
        Ok(())
    }

    fn layouts(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("layouts")?;
        if cur.peek().is_some() {
            loop {
                self.plan.layouts.push(layout(cur)?);
                if !cur.at_punct(',') {
                    break;
                }
                cur.bump();
            }
        }
        cur.end()
    }

    fn output(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("output")?;
        let name = cur.string("the output's name (a string)")?;
        cur.punct('=')?;
        let b = buffer_id(cur)?;
        cur.end()?;
        self.plan.outputs.push((name, b));
        Ok(())
    }

    fn kernel(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        let k = numbered::<KernelId>(cur, 'k', self.plan.kernels.len(), "kernels")?;
        cur.punct('=')?;
        match cur.one_of(&["gemm", "weight_grad", "traversal"])? {
            0 => {
                let g = gemm(cur)?;
                cur.end()?;
                self.plan.kernels.push(Kernel::Gemm(g));
            }
            1 => {
                let g = weight_grad(cur)?;
                cur.end()?;
                self.plan.kernels.push(Kernel::WeightGrad(g));
            }
            _ => {
                let schedule = schedule(cur)?;
                cur.punct('{')?;
                cur.end()?;
                self.open = Some((k, Traversal { schedule, body: Vec::new() }));
            }
        }
        Ok(())
    }
}

/// An id `{prefix}{n}` that must be the `expect`-th of its kind.
fn numbered<K: EntityId>(
    cur: &mut Cursor,
    prefix: char,
    expect: usize,
    what: &str,
) -> Result<K, IrError> {
    let expect = format!("{prefix}{expect}");
    let col = cur.col();
    let id: K = cur.id(prefix, &format!("`{expect}`"))?;
    if id.to_string() != expect {
        return Err(err(
            cur.line,
            col,
            format!("expected `{expect}` ({what} are numbered in order), found `{id}`"),
        ));
    }
    Ok(id)
}

fn buffer_id(cur: &mut Cursor) -> Result<BufferId, IrError> {
    cur.id('b', "a buffer (`b0`, `b1`, ...)")
}

fn reg(cur: &mut Cursor) -> Result<RegId, IrError> {
    cur.id('r', "a register (`r0`, `r1`, ...)")
}

/// `gemm ... c BID mode`, after `gemm`.
fn gemm(cur: &mut Cursor) -> Result<Gemm, IrError> {
    cur.keyword("rows")?;
    let rows = row_space(cur)?;
    cur.keyword("segment")?;
    let segment = select(cur)?;
    cur.keyword("a")?;
    let a = buffer_id(cur)?;
    cur.keyword("gather")?;
    let gather = row_index(cur)?;
    cur.keyword("b")?;
    let b = buffer_id(cur)?;
    let form = form(cur)?;
    let mut epilogue = Vec::new();
    if cur.at_word("epilogue") {
        cur.bump();
        cur.punct('[')?;
        if !cur.at_punct(']') {
            loop {
                epilogue.push(epilogue_op(cur)?);
                if !cur.at_punct(',') {
                    break;
                }
                cur.bump();
            }
        }
        cur.punct(']')?;
    }
    cur.keyword("c")?;
    let c = buffer_id(cur)?;
    let store = store_mode(cur)?;
    Ok(Gemm { rows, segment, a, gather, b, form, epilogue, c, store })
}

/// `weight_grad ... c BID`, after `weight_grad`.
fn weight_grad(cur: &mut Cursor) -> Result<WeightGrad, IrError> {
    cur.keyword("rows")?;
    let rows = row_space(cur)?;
    cur.keyword("segment")?;
    let segment = select(cur)?;
    cur.keyword("a")?;
    let a = if cur.at_word("one") {
        cur.bump();
        None
    } else {
        let buf = buffer_id(cur)?;
        cur.keyword("gather")?;
        Some((buf, row_index(cur)?))
    };
    cur.keyword("b")?;
    let b = buffer_id(cur)?;
    cur.keyword("gather")?;
    let b_index = row_index(cur)?;
    let form = form(cur)?;
    cur.keyword("c")?;
    let c = buffer_id(cur)?;
    Ok(WeightGrad { rows, segment, a, b: (b, b_index), form, c })
}

fn epilogue_op(cur: &mut Cursor) -> Result<Epilogue, IrError> {
    if cur.at_word("scale") || cur.at_word("add") {
        let scale = cur.at_word("scale");
        cur.bump();
        let buf = buffer_id(cur)?;
        let index = row_index(cur)?;
        return Ok(if scale {
            Epilogue::Scale { buf, index }
        } else {
            Epilogue::Add { buf, index }
        });
    }
    match UNARY.iter().position(|w| *w == first_word(cur)) {
        Some(i) => {
            cur.bump();
            Ok(Epilogue::Unary(unary(i, cur)?))
        }
        None => Err(cur.expected("an epilogue (`scale BUF INDEX`, `add BUF INDEX` or a function)")),
    }
}

/// `rN = level op : shape`, the `n`-th statement of a body.
fn stmt(cur: &mut Cursor, n: usize) -> Result<Stmt, IrError> {
    numbered::<RegId>(cur, 'r', n, "statements")?;
    cur.punct('=')?;
    let level = [Level::Edge, Level::Node][cur.one_of(&["edge", "node"])?];
    let op = stmt_op(cur)?;
    cur.punct(':')?;
    let shape = cur.shape()?;
    cur.end()?;
    Ok(Stmt { level, op, shape })
}

const STMT_WORDS: [&str; 15] = [
    "load",
    "const",
    "dot",
    "view",
    "concat",
    "matvec",
    "softmax",
    "aggregate",
    "store",
    "grad",
    "sum_to",
    "transpose",
    "narrow",
    "group_size",
    "max_grad",
];

fn stmt_op(cur: &mut Cursor) -> Result<StmtOp, IrError> {
    let word = first_word(cur);
    if let Some(i) = UNARY.iter().position(|w| *w == word) {
        cur.bump();
        let op = unary(i, cur)?;
        return Ok(StmtOp::Unary { op, x: reg(cur)? });
    }
    if let Some(i) = BINARY.iter().position(|w| *w == word) {
        cur.bump();
        let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max][i];
        let (a, b) = two_regs(cur)?;
        return Ok(StmtOp::Binary { op, a, b });
    }
    if !STMT_WORDS.contains(&word.as_str()) {
        return Err(cur.expected("an operation (`load`, `store`, `matvec`, `relu`, `add`, ...)"));
    }
    cur.bump();
    Ok(match word.as_str() {
        "load" => {
            let buf = buffer_id(cur)?;
            StmtOp::Load { buf, index: row_index(cur)? }
        }
        "const" => StmtOp::Const(cur.float()?),
        "dot" => {
            let (a, b) = two_regs(cur)?;
            StmtOp::Dot { a, b }
        }
        "view" => {
            let x = reg(cur)?;
            cur.keyword("as")?;
            StmtOp::View { x, shape: cur.shape()? }
        }
        "concat" => StmtOp::Concat { xs: reg_list(cur)? },
        "matvec" => {
            let x = reg(cur)?;
            cur.punct(',')?;
            let w = buffer_id(cur)?;
            cur.keyword("by")?;
            let select = select(cur)?;
            StmtOp::MatVec { x, w, select, form: form(cur)? }
        }
        "softmax" => StmtOp::Softmax { x: reg(cur)? },
        "aggregate" => {
            let op = [AggOp::Sum, AggOp::Mean, AggOp::Max][cur.one_of(&["sum", "mean", "max"])?];
            let group = agg_group(cur);
            StmtOp::Aggregate { op, group, x: reg(cur)? }
        }
        "grad" => {
            let Some(i) = UNARY.iter().position(|w| *w == first_word(cur)) else {
                return Err(cur.expected("the function differentiated (`relu`, `tanh`, ...)"));
            };
            cur.bump();
            let op = unary(i, cur)?;
            let (x, dy) = two_regs(cur)?;
            StmtOp::UnaryGrad { op, x, dy }
        }
        "sum_to" => StmtOp::SumTo { x: reg(cur)? },
        "transpose" => StmtOp::Transpose { x: reg(cur)? },
        "narrow" => {
            let x = reg(cur)?;
            cur.keyword("from")?;
            let start = cur.number::<usize>("the first element (a non-negative integer)")?;
            cur.keyword("len")?;
            StmtOp::Narrow { x, start, len: cur.number::<usize>("a length")? }
        }
        "group_size" => StmtOp::GroupSize { group: agg_group(cur) },
        "max_grad" => {
            let group = agg_group(cur);
            let (x, dy) = two_regs(cur)?;
            StmtOp::MaxGrad { group, x, dy }
        }
        _ => {
            let buf = buffer_id(cur)?;
            let x = reg(cur)?;
            StmtOp::Store { buf, x, mode: store_mode(cur)? }
        }
    })
}

/// An optional `per_relation`.
fn agg_group(cur: &mut Cursor) -> AggGroup {
    if cur.at_word("per_relation") {
        cur.bump();
        AggGroup::PerRelation
    } else {
        AggGroup::All
    }
}

fn two_regs(cur: &mut Cursor) -> Result<(RegId, RegId), IrError> {
    let a = reg(cur)?;
    cur.punct(',')?;
    Ok((a, reg(cur)?))
}

/// Zero or more registers separated by commas, up to the `:`.
fn reg_list(cur: &mut Cursor) -> Result<Vec<RegId>, IrError> {
    let mut xs = Vec::new();
    if cur.at_punct(':') {
        return Ok(xs);
    }
    loop {
        xs.push(reg(cur)?);
        if !cur.at_punct(',') {
            return Ok(xs);
        }
        cur.bump();
    }
}

fn row_space(cur: &mut Cursor) -> Result<RowSpace, IrError> {
    const SPACES: [RowSpace; 7] = [
        RowSpace::Nodes,
        RowSpace::Edges,
        RowSpace::Compact(Endpoint::Src),
        RowSpace::Compact(Endpoint::Dst),
        RowSpace::Relations,
        RowSpace::NodeTypes,
        RowSpace::One,
    ];
    let names = ["nodes", "edges", "compact.src", "compact.dst", "relations", "ntypes", "one"];
    Ok(SPACES[cur.one_of(&names)?])
}

fn row_index(cur: &mut Cursor) -> Result<RowIndex, IrError> {
    use crate::inter::Select;
    const INDICES: [RowIndex; 10] = [
        RowIndex::This,
        RowIndex::Node(Endpoint::Src),
        RowIndex::Node(Endpoint::Dst),
        RowIndex::EdgeToCompact(Endpoint::Src),
        RowIndex::EdgeToCompact(Endpoint::Dst),
        RowIndex::Select(Select::Same),
        RowIndex::Select(Select::Relation),
        RowIndex::Select(Select::NodeType),
        RowIndex::Select(Select::SrcType),
        RowIndex::Select(Select::DstType),
    ];
    let names = [
        "this",
        "src",
        "dst",
        "compact.src",
        "compact.dst",
        "same",
        "relation",
        "ntype",
        "src.ntype",
        "dst.ntype",
    ];
    Ok(INDICES[cur.one_of(&names)?])
}

fn layout(cur: &mut Cursor) -> Result<Layout, IrError> {
    const LAYOUTS: [Layout; 5] = [
        Layout::NodesByType,
        Layout::EdgesByRelation,
        Layout::InCsr,
        Layout::Compact(Endpoint::Src),
        Layout::Compact(Endpoint::Dst),
    ];
    let names = ["nodes_by_type", "edges_by_relation", "in_csr", "compact.src", "compact.dst"];
    Ok(LAYOUTS[cur.one_of(&names)?])
}

fn store_mode(cur: &mut Cursor) -> Result<StoreMode, IrError> {
    const MODES: [StoreMode; 5] = [
        StoreMode::Write,
        StoreMode::AddIntoDst,
        StoreMode::AddIntoSrc,
        StoreMode::AddIntoCompact(Endpoint::Src),
        StoreMode::AddIntoCompact(Endpoint::Dst),
    ];
    let names =
        ["write", "add_into_dst", "add_into_src", "add_into_compact.src", "add_into_compact.dst"];
    Ok(MODES[cur.one_of(&names)?])
}

fn schedule(cur: &mut Cursor) -> Result<Schedule, IrError> {
    Ok(match cur.one_of(&["rows", "node_parallel", "edge_parallel"])? {
        0 => Schedule::Rows(row_space(cur)?),
        1 => Schedule::NodeParallel,
        _ => Schedule::EdgeParallel,
    })
}

/// `plain(k=K, n=N)`, `batched(batch=B, k=K, n=N)` or `broadcast(batch=B, k=K, n=N)`.
fn form(cur: &mut Cursor) -> Result<LinearForm, IrError> {
    let kind = cur.one_of(&["plain", "batched", "broadcast"])?;
    cur.punct('(')?;
    let mut field = |name: &str, last: bool| -> Result<usize, IrError> {
        cur.keyword(name)?;
        cur.punct('=')?;
        let v = cur.number::<usize>("an extent (a non-negative integer)")?;
        cur.punct(if last { ')' } else { ',' })?;
        Ok(v)
    };
    Ok(match kind {
        0 => {
            let k = field("k", false)?;
            LinearForm::Plain { k, n: field("n", true)? }
        }
        _ => {
            let batch = field("batch", false)?;
            let k = field("k", false)?;
            let n = field("n", true)?;
            if kind == 1 {
                LinearForm::Batched { batch, k, n }
            } else {
                LinearForm::Broadcast { batch, k, n }
            }
        }
    })
}
