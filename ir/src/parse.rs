//! The parser of the inter-operator IR's text form (grammar in [`crate::text`]).
//!
//! [`parse_module`] reads the text line by line, each line through a small tokenizer, and reports
//! the first problem as [`IrError::Parse`] with its line and column and what was expected. The
//! module it builds is then checked with [`verify`], so a declared type that differs from what
//! [`infer_type`](crate::infer::infer_type) gives is an error at that type's position. It never
//! panics, whatever the input.

use crate::entity::EntityId;
use crate::error::IrError;
use crate::inter::InputKind;
use crate::inter::{
    AggGroup, AggOp, BinaryOp, DType, Domain, Endpoint, Index, Init, Inst, Module, Op, Select,
    Shape, Type, UnaryOp, ValueId, Weight, WeightId, WeightKind,
};
use crate::verify::{verify, Location};

/// Parses a module in the text form and verifies it.
pub fn parse_module(text: &str) -> Result<Module, IrError> {
    let mut p = ModuleParser::default();
    for (i, line) in text.lines().enumerate() {
        let tokens = tokenize(line, i + 1)?;
        if tokens.is_empty() {
            continue;
        }
        let end_col = line.chars().count() + 1;
        let mut cur = Cursor { tokens, pos: 0, line: i + 1, end_col };
        p.statement(&mut cur)?;
    }
    if !p.header_seen {
        let line = text.lines().count() + 1;
        return Err(IrError::Parse {
            line,
            col: 1,
            message: "expected `model NAME(...)`, found end of input".into(),
        });
    }
    match verify(&p.module) {
        Ok(()) => Ok(p.module),
        Err(errors) => {
            let first = &errors[0];
            let (line, col) = p.position(&first.at, first.invariant);
            Err(IrError::Parse { line, col, message: first.to_string() })
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Num(String),
    Str(String),
    Punct(char),
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) col: usize,
}

fn describe(t: Option<&Token>) -> String {
    match t.map(|t| &t.tok) {
        None => "end of line".to_string(),
        Some(Tok::Ident(s) | Tok::Num(s)) => format!("`{s}`"),
        Some(Tok::Str(s)) => format!("string {}", crate::text::quote(s)),
        Some(Tok::Punct(c)) => format!("`{c}`"),
    }
}

pub(crate) fn err(line: usize, col: usize, message: String) -> IrError {
    IrError::Parse { line, col, message }
}

/// Splits one line into tokens; `//` outside a string ends the line.
pub(crate) fn tokenize(line: &str, line_no: usize) -> Result<Vec<Token>, IrError> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let col = i + 1;
        let word = |start: usize, ok: fn(char) -> bool| {
            let mut j = start;
            while chars.get(j).is_some_and(|&c| ok(c)) {
                j += 1;
            }
            j
        };
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        let is_num = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
        let next_is_num = chars.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.');
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            break;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let j = word(i, is_word);
            out.push(Token { tok: Tok::Ident(chars[i..j].iter().collect()), col });
            i = j;
        } else if c.is_ascii_digit() || ((c == '-' || c == '+') && next_is_num) {
            let j = word(i + 1, is_num);
            out.push(Token { tok: Tok::Num(chars[i..j].iter().collect()), col });
            i = j;
        } else if c == '"' {
            let (s, j) = string(&chars, i + 1, line_no, col)?;
            out.push(Token { tok: Tok::Str(s), col });
            i = j;
        } else if "=:,[](){};".contains(c) {
            out.push(Token { tok: Tok::Punct(c), col });
            i += 1;
        } else {
            return Err(err(line_no, col, format!("unexpected character {c:?}")));
        }
    }
    Ok(out)
}

/// The string whose contents start at `chars[i]`, and the index after its closing quote.
fn string(
    chars: &[char],
    mut i: usize,
    line: usize,
    open: usize,
) -> Result<(String, usize), IrError> {
    let mut s = String::new();
    loop {
        match chars.get(i) {
            None => return Err(err(line, open, "unterminated string: expected `\"`".into())),
            Some('"') => return Ok((s, i + 1)),
            Some('\\') => {
                let bad = || {
                    err(
                        line,
                        i + 1,
                        "bad escape: expected one of \\\\ \\\" \\n \\t \\r \\0 \\u{HEX}".into(),
                    )
                };
                let c = match chars.get(i + 1) {
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('0') => '\0',
                    Some('u') if chars.get(i + 2) == Some(&'{') => {
                        let close =
                            (i + 3..chars.len()).find(|&j| chars[j] == '}').ok_or_else(bad)?;
                        let hex: String = chars[i + 3..close].iter().collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(bad)?;
                        s.push(c);
                        i = close + 1;
                        continue;
                    }
                    _ => return Err(bad()),
                };
                s.push(c);
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// The tokens of one line and the position in them.
pub(crate) struct Cursor {
    pub(crate) tokens: Vec<Token>,
    pub(crate) pos: usize,
    pub(crate) line: usize,
    pub(crate) end_col: usize,
}

impl Cursor {
    pub(crate) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    pub(crate) fn col(&self) -> usize {
        self.peek().map_or(self.end_col, |t| t.col)
    }
    pub(crate) fn expected(&self, what: &str) -> IrError {
        err(self.line, self.col(), format!("expected {what}, found {}", describe(self.peek())))
    }
    pub(crate) fn bump(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        self.pos += 1;
        t
    }
    pub(crate) fn at_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
    }
    pub(crate) fn at_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s == w)
    }
    pub(crate) fn punct(&mut self, c: char) -> Result<(), IrError> {
        if self.at_punct(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(&format!("`{c}`")))
        }
    }
    pub(crate) fn keyword(&mut self, w: &str) -> Result<(), IrError> {
        if self.at_word(w) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(&format!("`{w}`")))
        }
    }
    pub(crate) fn end(&mut self) -> Result<(), IrError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.expected("end of line")),
        }
    }
    /// One of `words`, as its index.
    pub(crate) fn one_of(&mut self, words: &[&str]) -> Result<usize, IrError> {
        let found = match self.peek() {
            Some(Token { tok: Tok::Ident(s), .. }) => words.iter().position(|w| w == s),
            _ => None,
        };
        match found {
            Some(i) => {
                self.pos += 1;
                Ok(i)
            }
            None => {
                let list: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                Err(self.expected(&format!("one of {}", list.join(", "))))
            }
        }
    }
    pub(crate) fn string(&mut self, what: &str) -> Result<String, IrError> {
        match self.peek() {
            Some(Token { tok: Tok::Str(s), .. }) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }
    /// An identifier or a string.
    pub(crate) fn name(&mut self, what: &str) -> Result<String, IrError> {
        match self.peek() {
            Some(Token { tok: Tok::Str(s) | Tok::Ident(s), .. }) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }
    /// A number token parsed as `T`.
    pub(crate) fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, IrError> {
        let parsed = match self.peek() {
            Some(Token { tok: Tok::Num(s), .. }) => s.parse::<T>().ok(),
            _ => None,
        };
        match parsed {
            Some(v) => {
                self.pos += 1;
                Ok(v)
            }
            None => Err(self.expected(what)),
        }
    }
    pub(crate) fn float(&mut self) -> Result<f64, IrError> {
        let parsed = match self.peek() {
            Some(Token { tok: Tok::Num(s) | Tok::Ident(s), .. }) => s.parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(v) => {
                self.pos += 1;
                Ok(v)
            }
            None => Err(self.expected("a number")),
        }
    }
    /// An id `{prefix}{n}`.
    pub(crate) fn id<K: EntityId>(&mut self, prefix: char, what: &str) -> Result<K, IrError> {
        let n = match self.peek() {
            Some(Token { tok: Tok::Ident(s), .. }) => s
                .strip_prefix(prefix)
                .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                .and_then(|d| d.parse::<u32>().ok()),
            _ => None,
        };
        match n {
            Some(n) => {
                self.pos += 1;
                Ok(K::new(n as usize))
            }
            None => Err(self.expected(what)),
        }
    }
    pub(crate) fn value(&mut self) -> Result<ValueId, IrError> {
        self.id('v', "a value (`v0`, `v1`, ...)")
    }
    pub(crate) fn shape(&mut self) -> Result<Shape, IrError> {
        self.punct('[')?;
        let mut dims = Vec::new();
        if !self.at_punct(']') {
            loop {
                dims.push(self.number::<usize>("an extent (a non-negative integer)")?);
                if !self.at_punct(',') {
                    break;
                }
                self.pos += 1;
            }
        }
        self.punct(']')?;
        Ok(Shape(dims))
    }
    pub(crate) fn domain(&mut self) -> Result<Domain, IrError> {
        const DOMAINS: [Domain; 7] = [
            Domain::Node,
            Domain::Edge,
            Domain::Compact(Endpoint::Src),
            Domain::Compact(Endpoint::Dst),
            Domain::Shared,
            Domain::Relation,
            Domain::NodeType,
        ];
        let names = ["node", "edge", "compact.src", "compact.dst", "shared", "relation", "ntype"];
        Ok(DOMAINS[self.one_of(&names)?])
    }
    pub(crate) fn ty(&mut self) -> Result<Type, IrError> {
        let domain = self.domain()?;
        let shape = self.shape()?;
        let dtype = [DType::F32, DType::F64][self.one_of(&["f32", "f64"])?];
        Ok(Type { domain, shape, dtype })
    }
}

/// Source positions of the statements, for placing verifier errors.
#[derive(Default)]
struct ModuleParser {
    module: Module,
    header_seen: bool,
    header_line: usize,
    weight_lines: Vec<usize>,
    /// Line, column of the operator, column of the type.
    inst_pos: Vec<(usize, usize, usize)>,
    output_lines: Vec<usize>,
}

impl ModuleParser {
    fn statement(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        if !self.header_seen {
            if !cur.at_word("model") {
                return Err(cur.expected("`model NAME(...)`"));
            }
            return self.header(cur);
        }
        let first = match cur.peek() {
            Some(Token { tok: Tok::Ident(s), .. }) => s.clone(),
            _ => String::new(),
        };
        match first.as_str() {
            "model" => Err(err(
                cur.line,
                cur.col(),
                "a second `model` header: one text holds one module".into(),
            )),
            "weight" => self.weight(cur),
            "output" => self.output(cur),
            s if s.starts_with('v') => self.inst(cur),
            _ => Err(cur.expected("a statement (`weight wN ...`, `vN = ...` or `output ...`)")),
        }
    }

    fn header(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("model")?;
        self.module.name = cur.name("the model's name")?;
        cur.punct('(')?;
        if !cur.at_punct(')') {
            loop {
                let name = cur.name("a parameter name")?;
                cur.punct('=')?;
                let value = cur.number::<i64>("an integer")?;
                self.module.params.push((name, value));
                if !cur.at_punct(',') {
                    break;
                }
                cur.bump();
            }
        }
        cur.punct(')')?;
        cur.end()?;
        self.header_seen = true;
        self.header_line = cur.line;
        Ok(())
    }

    fn weight(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("weight")?;
        let expect = WeightId::new(self.module.weights.len());
        let col = cur.col();
        let id: WeightId = cur.id('w', &format!("`{expect}`"))?;
        if id != expect {
            return Err(err(
                cur.line,
                col,
                format!("expected `{expect}` (weights are numbered in order), found `{id}`"),
            ));
        }
        let name = cur.string("the weight's name (a string)")?;
        cur.punct(':')?;
        let kinds = [WeightKind::Shared, WeightKind::PerRelation, WeightKind::PerNodeType];
        let kind = kinds[cur.one_of(&["shared", "relation", "ntype"])?];
        let shape = cur.shape()?;
        let init = init(cur)?;
        cur.end()?;
        self.module.weights.push(Weight { name, kind, shape, init });
        self.weight_lines.push(cur.line);
        Ok(())
    }

    fn output(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        cur.keyword("output")?;
        let name = cur.string("the output's name (a string)")?;
        cur.punct('=')?;
        let v = cur.value()?;
        cur.end()?;
        self.module.outputs.push((name, v));
        self.output_lines.push(cur.line);
        Ok(())
    }

    fn inst(&mut self, cur: &mut Cursor) -> Result<(), IrError> {
        let expect = ValueId::new(self.module.insts.len());
        let col = cur.col();
        let id = cur.value()?;
        if id != expect {
            return Err(err(
                cur.line,
                col,
                format!("expected `{expect}` (instructions are numbered in order), found `{id}`"),
            ));
        }
        cur.punct('=')?;
        let op_col = cur.col();
        let op = op(cur)?;
        cur.punct(':')?;
        let ty_col = cur.col();
        let ty = cur.ty()?;
        let name = if cur.at_punct(';') {
            cur.bump();
            Some(cur.name("the value's source name")?)
        } else {
            None
        };
        cur.end()?;
        self.module.insts.push(Inst { op, ty, name });
        self.inst_pos.push((cur.line, op_col, ty_col));
        Ok(())
    }

    /// Line and column at which to report a violation of `invariant` at `at`.
    fn position(&self, at: &Location, invariant: u32) -> (usize, usize) {
        match at {
            Location::Module => (self.header_line, 1),
            Location::Weight(w) => (self.weight_lines.get(w.index()).copied().unwrap_or(1), 1),
            Location::Inst(v) => match self.inst_pos.get(v.index()) {
                Some(&(line, op_col, ty_col)) => {
                    (line, if matches!(invariant, 5 | 8 | 9) { ty_col } else { op_col })
                }
                None => (1, 1),
            },
            Location::Output { index, .. } => {
                (self.output_lines.get(*index).copied().unwrap_or(1), 1)
            }
            // Plan locations never come out of `verify`.
            Location::Buffer(_) | Location::Kernel(_) | Location::Stmt(..) => (1, 1),
        }
    }
}

pub(crate) const UNARY: [&str; 10] =
    ["neg", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "exp", "log", "sqrt"];
pub(crate) const BINARY: [&str; 5] = ["add", "sub", "mul", "div", "max"];
const OTHER: [&str; 20] = [
    "scatter",
    "slice_sum",
    "sum_to",
    "transpose",
    "linear_grad",
    "grad",
    "group_size",
    "max_grad",
    "narrow",
    "input",
    "weight",
    "const",
    "gather",
    "slice",
    "linear",
    "dot",
    "view",
    "concat",
    "softmax",
    "aggregate",
];

/// The operator of an instruction, up to the `:` before its type.
fn op(cur: &mut Cursor) -> Result<Op, IrError> {
    let word = match cur.peek() {
        Some(Token { tok: Tok::Ident(s), .. }) => s.clone(),
        _ => String::new(),
    };
    if let Some(i) = UNARY.iter().position(|w| *w == word) {
        cur.bump();
        let op = unary(i, cur)?;
        return Ok(Op::Unary { op, x: cur.value()? });
    }
    if let Some(i) = BINARY.iter().position(|w| *w == word) {
        cur.bump();
        let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max][i];
        let a = cur.value()?;
        cur.punct(',')?;
        return Ok(Op::Binary { op, a, b: cur.value()? });
    }
    if !OTHER.contains(&word.as_str()) {
        return Err(cur.expected("an operator (`input`, `gather`, `linear`, `relu`, `add`, ...)"));
    }
    cur.bump();
    keyword_op(&word, cur)
}

/// The rest of an operator introduced by the keyword `word` (one of [`OTHER`]).
fn keyword_op(word: &str, cur: &mut Cursor) -> Result<Op, IrError> {
    Ok(match word {
        "input" => {
            let name = cur.string("the input's name (a string)")?;
            let kind = if cur.at_word("learned") {
                cur.bump();
                InputKind::Table(init(cur)?)
            } else if cur.at_word("dropout") {
                cur.bump();
                InputKind::Dropout(cur.float()?)
            } else {
                InputKind::Data
            };
            Op::Input { name, kind }
        }
        "weight" => Op::Weight(cur.id('w', "a weight (`w0`, `w1`, ...)")?),
        "const" => Op::Const(cur.float()?),
        "gather" => {
            let x = cur.value()?;
            cur.keyword("by")?;
            Op::Gather { x, index: index(cur)? }
        }
        "slice" => {
            let w = cur.value()?;
            cur.keyword("by")?;
            let by = select(cur)?;
            cur.keyword("to")?;
            Op::Slice { w, by, domain: cur.domain()? }
        }
        "linear" => {
            let x = cur.value()?;
            cur.punct(',')?;
            let w = cur.value()?;
            cur.keyword("by")?;
            Op::Linear { x, w, by: select(cur)? }
        }
        "dot" => {
            let a = cur.value()?;
            cur.punct(',')?;
            Op::Dot { a, b: cur.value()? }
        }
        "view" => {
            let x = cur.value()?;
            cur.keyword("as")?;
            Op::View { x, shape: cur.shape()? }
        }
        "concat" => Op::Concat { xs: value_list(cur)? },
        "softmax" => Op::EdgeSoftmax { x: cur.value()? },
        "aggregate" => aggregate(cur)?,
        _ => derivative_op(word, cur)?,
    })
}

/// The rest of a derivative operator (`scatter`, ..., `narrow`) after its keyword `word`.
fn derivative_op(word: &str, cur: &mut Cursor) -> Result<Op, IrError> {
    let pair = |cur: &mut Cursor| -> Result<(ValueId, ValueId), IrError> {
        let a = cur.value()?;
        cur.punct(',')?;
        Ok((a, cur.value()?))
    };
    Ok(match word {
        "scatter" => {
            let x = cur.value()?;
            cur.keyword("by")?;
            Op::Scatter { x, index: index(cur)? }
        }
        "slice_sum" => {
            let x = cur.value()?;
            cur.keyword("by")?;
            let by = select(cur)?;
            cur.keyword("to")?;
            Op::SliceSum { x, by, domain: cur.domain()? }
        }
        "sum_to" => {
            let x = cur.value()?;
            cur.keyword("as")?;
            Op::SumTo { x, shape: cur.shape()? }
        }
        "transpose" => Op::Transpose { x: cur.value()? },
        "linear_grad" => {
            let (x, dy) = pair(cur)?;
            cur.keyword("by")?;
            let by = select(cur)?;
            cur.keyword("to")?;
            let domain = cur.domain()?;
            Op::LinearGrad { x, dy, by, domain, shape: cur.shape()? }
        }
        "grad" => {
            let i = cur.one_of(&UNARY)?;
            let op = unary(i, cur)?;
            let (x, dy) = pair(cur)?;
            Op::UnaryGrad { op, x, dy }
        }
        "group_size" => Op::GroupSize { group: group(cur) },
        "max_grad" => {
            let group = group(cur);
            let (x, dy) = pair(cur)?;
            Op::MaxGrad { group, x, dy }
        }
        _ => {
            let x = cur.value()?;
            cur.keyword("from")?;
            let start = cur.number("the first element")?;
            cur.keyword("len")?;
            Op::Narrow { x, start, len: cur.number("the number of elements")? }
        }
    })
}

/// An optional `per_relation`.
/// An initialiser's name.
fn init(cur: &mut Cursor) -> Result<Init, IrError> {
    Ok([Init::Glorot, Init::Zeros, Init::Ones][cur.one_of(&["glorot", "zeros", "ones"])?])
}

fn group(cur: &mut Cursor) -> AggGroup {
    if cur.at_word("per_relation") {
        cur.bump();
        AggGroup::PerRelation
    } else {
        AggGroup::All
    }
}

/// `agg [per_relation] VID`, after `aggregate`.
fn aggregate(cur: &mut Cursor) -> Result<Op, IrError> {
    let op = [AggOp::Sum, AggOp::Mean, AggOp::Max][cur.one_of(&["sum", "mean", "max"])?];
    let group = group(cur);
    Ok(Op::Aggregate { op, group, x: cur.value()? })
}

/// The `i`-th unary function of [`UNARY`], reading its parameter if it has one.
pub(crate) fn unary(i: usize, cur: &mut Cursor) -> Result<UnaryOp, IrError> {
    let mut param = || -> Result<f64, IrError> {
        cur.punct('(')?;
        let p = cur.float()?;
        cur.punct(')')?;
        Ok(p)
    };
    Ok(match i {
        0 => UnaryOp::Neg,
        1 => UnaryOp::Relu,
        2 => UnaryOp::LeakyRelu(param()?),
        3 => UnaryOp::Elu(param()?),
        4 => UnaryOp::Gelu,
        5 => UnaryOp::Tanh,
        6 => UnaryOp::Sigmoid,
        7 => UnaryOp::Exp,
        8 => UnaryOp::Log,
        _ => UnaryOp::Sqrt,
    })
}

/// Zero or more values separated by commas, up to the `:`.
fn value_list(cur: &mut Cursor) -> Result<Vec<ValueId>, IrError> {
    let mut xs = Vec::new();
    if cur.at_punct(':') {
        return Ok(xs);
    }
    loop {
        xs.push(cur.value()?);
        if !cur.at_punct(',') {
            return Ok(xs);
        }
        cur.bump();
    }
}

fn index(cur: &mut Cursor) -> Result<Index, IrError> {
    const INDICES: [Index; 6] = [
        Index::Node(Endpoint::Src),
        Index::Node(Endpoint::Dst),
        Index::EdgeToCompact(Endpoint::Src),
        Index::EdgeToCompact(Endpoint::Dst),
        Index::CompactNode(Endpoint::Src),
        Index::CompactNode(Endpoint::Dst),
    ];
    Ok(INDICES
        [cur.one_of(&["src", "dst", "compact.src", "compact.dst", "node.src", "node.dst"])?])
}

pub(crate) fn select(cur: &mut Cursor) -> Result<Select, IrError> {
    const SELECTS: [Select; 5] =
        [Select::Same, Select::Relation, Select::NodeType, Select::SrcType, Select::DstType];
    Ok(SELECTS[cur.one_of(&["same", "relation", "ntype", "src.ntype", "dst.ntype"])?])
}
