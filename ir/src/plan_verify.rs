//! The verifier of kernel plans: checks a [`Plan`] against every invariant below and reports
//! all violations, each naming where it is (`b2`, `k3`, `k3.r4`, `output "out"`, `model` for the
//! header) and the number of the invariant it breaks. Plan lowering and scheduling passes run it
//! on what they produce in tests; back ends may assume a plan that verifies.
//!
//! Iteration rows: a gemm iterates over `rows`; a statement of a traversal over the rows of its
//! `Rows(space)` schedule, over edges (edge-parallel, or edge level of a node-parallel
//! traversal) or over destination nodes (node level).
//!
//! # Invariants
//!
//! 1. Parameter names are unique, weight names are unique, no weight shape has an extent of 0.
//! 2. Every buffer named by a kernel or an output exists.
//! 3. Buffers: a `weight wN` buffer names a declared weight and has its slice shape and its row
//!    space (`one` for shared, `relations` per relation, `ntypes` per node type); an input
//!    buffer has `nodes`, `edges` or compact rows and input names are unique; no buffer shape
//!    has an extent of 0.
//! 4. Kernels write only temp and output buffers, and read only input and weight buffers and
//!    buffers written by an *earlier* kernel (a kernel that adds into a buffer does not read
//!    it: a buffer first written by `add_into_dst` starts at zero).
//! 5. Every output names a buffer declared `output` with the same name and written by some
//!    kernel; output names are unique; every `output` buffer is listed as an output.
//! 6. Gemm operands: `b`'s rows are selected from the iteration rows by `segment` (the rule of
//!    [`crate::infer::check_select`]); `a`'s rows are reached by `gather` (the
//!    row-index rule of 11); `shape::linear(a.shape, b.shape)` exists and gives `form` and the
//!    shape of `c`.
//! 7. Gemm output: with `write`, `c` has the iteration rows; with `add_into_dst` or
//!    `add_into_src`, the rows are edges (or the compact rows of that endpoint, whose node
//!    they add into) and `c` has `nodes` rows; a gemm never adds into
//!    compact rows. Epilogue: a `scale` buffer has one element per row, an
//!    `add` buffer broadcasts to `c`'s shape, and both are reached by their index (rule of 11).
//! 8. Traversal registers: every operand refers to an earlier statement that is not a store.
//! 9. Every statement's shape is its operation's typing rule: `load` the buffer's shape,
//!    `const` `[]`, element-wise ops `shape::broadcast`, `dot` `shape::dot`, `view` the same
//!    number of elements, `concat` `shape::concat` (at least one operand), `matvec`
//!    `shape::linear` with the statement's `form`, `softmax` and `aggregate` their operand's;
//!    a store is `[]` and stores a register of its buffer's shape.
//! 10. Levels: `node` statements only in `node_parallel` traversals; `softmax`, `group_size`
//!     and `max_grad` only there, at edge level; `aggregate` only there, at node level, of an edge register (lower a sum in
//!     an edge-parallel traversal to `store ... add_into_dst`); otherwise a node statement
//!     never reads an edge register, nor an edge statement a node register.
//! 11. Row indexes: a row of space `I` reads a buffer of rows `B` by `this` when `B` is `I` or
//!     `one`; by `src`/`dst` when `I` is edges (or the compact rows of that endpoint) and `B`
//!     is nodes; by `compact.src`/`compact.dst` when `I` is edges and `B` the compact rows of
//!     that endpoint; by a selection as `check_select` allows. `matvec` selections likewise.
//! 12. Stores: `write` stores into a buffer with the iteration rows; `add_into_dst` and
//!     `add_into_src` only over edges (or the compact rows of their endpoint), into a buffer of
//!     `nodes` rows; `add_into_compact.e` only
//!     over edges, into a buffer of `compact.e` rows.
//! 13. Layouts: each is listed once, and every needed one is listed: `in_csr` by node-parallel
//!     traversals; `edges_by_relation` by gemms over edges segmented by relation; `compact.e`
//!     by compact iteration rows or buffers of endpoint `e` and by `compact.e` row indexes.
//! 15. Weight gradients: `a` (when present) and `b` are reached from the iteration rows by
//!     their indexes (rule of 11); `c`'s rows are selected by `segment`; `b` has the shape of
//!     the product `shape::linear(a.shape, c.shape)` with the kernel's `form`, or, without
//!     `a`, `c`'s shape with form `plain(k=1, n=numel)`.
//! 14. Slots: only temps carry a slot; temps sharing a slot have disjoint lifetimes (from the
//!     kernel that first writes one to the last kernel that reads it, both included). The
//!     slot's allocation is the largest byte size of its buffers on the graph at hand, which
//!     the back end computes (row counts are only known with the graph).

use crate::infer::check_select;
use crate::inter::{Domain, Shape, WeightKind};
use crate::plan::{
    Buffer, BufferId, BufferKind, Epilogue, Gemm, Kernel, KernelId, Layout, Plan, RowIndex,
    RowSpace, StoreMode, WeightGrad,
};
use crate::plan_text::{form, layout, row_index, row_space};
use crate::shape;
use crate::verify::{Location, VerifyError};
use crate::EntityId;
use std::collections::{BTreeSet, HashMap, HashSet};

mod stmt;

/// Checks every invariant of the module doc; `Err` lists all violations, in plan order (header,
/// buffers, kernels, outputs, slots).
pub fn verify_plan(plan: &Plan) -> Result<(), Vec<VerifyError>> {
    let mut v = Verifier { plan, errs: Vec::new(), written: HashSet::new(), life: HashMap::new() };
    v.header();
    v.buffers();
    v.layout_list();
    for (k, kernel) in plan.kernels.iter() {
        v.kernel(k, kernel);
    }
    v.outputs();
    v.slots();
    if v.errs.is_empty() {
        Ok(())
    } else {
        Err(v.errs)
    }
}

/// The domain whose rows correspond to a row space (for [`check_select`]).
fn domain(s: RowSpace) -> Domain {
    match s {
        RowSpace::Nodes => Domain::Node,
        RowSpace::Edges => Domain::Edge,
        RowSpace::Compact(e) => Domain::Compact(e),
        RowSpace::Relations => Domain::Relation,
        RowSpace::NodeTypes => Domain::NodeType,
        RowSpace::One => Domain::Shared,
    }
}

/// Invariant 11: whether a row of `iter` reads a row of a buffer with rows `buf` by `index`.
fn check_index(iter: RowSpace, index: RowIndex, buf: RowSpace) -> Result<(), String> {
    let ok = match index {
        RowIndex::This => buf == iter || buf == RowSpace::One,
        RowIndex::Node(e) => {
            (iter == RowSpace::Edges || iter == RowSpace::Compact(e)) && buf == RowSpace::Nodes
        }
        RowIndex::EdgeToCompact(e) => iter == RowSpace::Edges && buf == RowSpace::Compact(e),
        RowIndex::Select(s) => check_select(domain(iter), &domain(buf), s).is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} rows cannot read {} rows by {}",
            row_space(iter),
            row_space(buf),
            row_index(index)
        ))
    }
}

fn has_zero(s: &Shape) -> bool {
    s.0.contains(&0)
}

struct Verifier<'a> {
    plan: &'a Plan,
    errs: Vec<VerifyError>,
    /// Buffers written by the kernels checked so far.
    written: HashSet<BufferId>,
    /// First kernel writing and last kernel reading each buffer (by kernel index).
    life: HashMap<BufferId, (Option<usize>, Option<usize>)>,
}

impl<'a> Verifier<'a> {
    fn push(&mut self, at: Location, invariant: u32, message: String) {
        self.errs.push(VerifyError { at, invariant, message });
    }

    /// The buffer `b`, or `None` after reporting that it does not exist (invariant 2).
    fn buf(&mut self, at: &Location, b: BufferId) -> Option<&'a Buffer> {
        let found = self.plan.buffers.get(b);
        if found.is_none() {
            self.push(at.clone(), 2, format!("{b} is not a buffer"));
        }
        found
    }

    fn header(&mut self) {
        let mut seen = HashSet::new();
        for (name, _) in &self.plan.params {
            if !seen.insert(name.as_str()) {
                self.push(Location::Module, 1, format!("parameter {name:?} is declared twice"));
            }
        }
        let mut seen = HashSet::new();
        for (id, w) in self.plan.weights.iter() {
            if !seen.insert(w.name.as_str()) {
                let msg = format!("weight name {:?} is declared twice", w.name);
                self.push(Location::Weight(id), 1, msg);
            }
            if has_zero(&w.shape) {
                self.push(Location::Weight(id), 1, format!("shape {} has an extent of 0", w.shape));
            }
        }
    }

    fn buffers(&mut self) {
        let mut inputs = HashSet::new();
        for (id, b) in self.plan.buffers.iter() {
            let at = || Location::Buffer(id);
            match &b.kind {
                BufferKind::Weight(w) => match self.plan.weights.get(*w) {
                    None => self.push(at(), 3, format!("weight {w} is not declared")),
                    Some(decl) => {
                        let rows = match decl.kind {
                            WeightKind::Shared => RowSpace::One,
                            WeightKind::PerRelation => RowSpace::Relations,
                            WeightKind::PerNodeType => RowSpace::NodeTypes,
                        };
                        if b.rows != rows || b.shape != decl.shape {
                            let msg = format!(
                                "{} {} does not match weight {w} ({} {})",
                                row_space(b.rows),
                                b.shape,
                                row_space(rows),
                                decl.shape
                            );
                            self.push(at(), 3, msg);
                        }
                    }
                },
                BufferKind::Input(name) => {
                    if !matches!(b.rows, RowSpace::Nodes | RowSpace::Edges | RowSpace::Compact(_)) {
                        let msg = format!(
                            "input {name:?} has {} rows, not nodes, edges or compact rows",
                            row_space(b.rows)
                        );
                        self.push(at(), 3, msg);
                    }
                    if !inputs.insert(name.as_str()) {
                        self.push(at(), 3, format!("input name {name:?} is used twice"));
                    }
                }
                BufferKind::Temp | BufferKind::Output(_) => {}
            }
            if has_zero(&b.shape) {
                self.push(at(), 3, format!("shape {} has an extent of 0", b.shape));
            }
            if b.slot.is_some() && b.kind != BufferKind::Temp {
                self.push(at(), 14, "only temps carry a slot".to_string());
            }
            if let RowSpace::Compact(e) = b.rows {
                self.need(at(), &BTreeSet::from([Layout::Compact(e)]));
            }
        }
    }

    /// Invariant 13: reports each layout of `needed` that the plan does not list.
    fn need(&mut self, at: Location, needed: &BTreeSet<Layout>) {
        for l in needed {
            if !self.plan.layouts.contains(l) {
                let msg = format!("needs layout {}, which is not listed", layout(*l));
                self.push(at.clone(), 13, msg);
            }
        }
    }

    fn layout_list(&mut self) {
        let mut seen = HashSet::new();
        for l in &self.plan.layouts {
            if !seen.insert(*l) {
                let msg = format!("layout {} is listed twice", layout(*l));
                self.push(Location::Module, 13, msg);
            }
        }
    }

    fn kernel(&mut self, k: KernelId, kernel: &'a Kernel) {
        let at = Location::Kernel(k);
        let (reads, writes, needed) = match kernel {
            Kernel::Gemm(g) => self.gemm(k, g),
            Kernel::WeightGrad(g) => self.weight_grad(k, g),
            Kernel::Traversal(t) => self.traversal(k, t),
        };
        self.need(at.clone(), &needed);
        // Invariant 4, with the lifetimes for invariant 14.
        for (loc, b) in reads {
            let Some(buf) = self.plan.buffers.get(b) else { continue };
            if matches!(buf.kind, BufferKind::Input(_) | BufferKind::Weight(_)) {
                continue;
            }
            if !self.written.contains(&b) {
                self.push(loc, 4, format!("reads {b}, which no earlier kernel writes"));
            }
            self.life.entry(b).or_default().1 = Some(k.index());
        }
        for (loc, b) in &writes {
            let Some(buf) = self.plan.buffers.get(*b) else { continue };
            let what = match buf.kind {
                BufferKind::Input(_) => "an input",
                BufferKind::Weight(_) => "a weight",
                _ => {
                    self.life.entry(*b).or_default().0.get_or_insert(k.index());
                    continue;
                }
            };
            self.push(loc.clone(), 4, format!("writes {b}, which is {what}"));
        }
        self.written.extend(writes.iter().map(|(_, b)| *b));
    }

    fn outputs(&mut self) {
        let mut seen = HashSet::new();
        for (index, (name, b)) in self.plan.outputs.iter().enumerate() {
            let at = Location::Output { index, name: name.clone() };
            if !seen.insert(name.as_str()) {
                self.push(at.clone(), 5, "output name is used twice".to_string());
            }
            let Some(buf) = self.buf(&at, *b) else { continue };
            if buf.kind != BufferKind::Output(name.clone()) {
                let msg = format!("{b} is not declared `output {}`", crate::text::quote(name));
                self.push(at.clone(), 5, msg);
            }
            if !self.written.contains(b) {
                self.push(at, 5, format!("{b} is written by no kernel"));
            }
        }
        for (id, buf) in self.plan.buffers.iter() {
            let listed = self.plan.outputs.iter().any(|(_, b)| *b == id);
            if matches!(buf.kind, BufferKind::Output(_)) && !listed {
                self.push(
                    Location::Buffer(id),
                    5,
                    "an output buffer that no output lists".to_string(),
                );
            }
        }
    }

    fn slots(&mut self) {
        let mut by_slot: HashMap<u32, Vec<(BufferId, usize, usize)>> = HashMap::new();
        for (id, b) in self.plan.buffers.iter() {
            let (Some(slot), BufferKind::Temp) = (b.slot, &b.kind) else { continue };
            let Some(&(Some(first), last)) = self.life.get(&id) else { continue };
            by_slot.entry(slot).or_default().push((id, first, last.unwrap_or(first).max(first)));
        }
        let mut found = Vec::new();
        for (slot, members) in &by_slot {
            for (i, &(b, fb, lb)) in members.iter().enumerate() {
                for &(a, fa, la) in &members[..i] {
                    if fa <= lb && fb <= la {
                        let msg = format!(
                            "shares slot {slot} with {a} (live k{fa}..k{la}) while live k{fb}..k{lb}"
                        );
                        found.push((b, msg));
                    }
                }
            }
        }
        found.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
        for (b, msg) in found {
            self.push(Location::Buffer(b), 14, msg);
        }
    }
}

/// The layouts that segmenting iteration rows `rows` by `segment` needs (gemms and weight
/// gradients): `edges_by_relation` for edges by relation, `compact.e` for compact rows.
fn segment_layouts(rows: RowSpace, segment: crate::Select) -> BTreeSet<Layout> {
    let mut needed = BTreeSet::new();
    if rows == RowSpace::Edges && segment == crate::Select::Relation {
        needed.insert(Layout::EdgesByRelation);
    }
    if let RowSpace::Compact(e) = rows {
        needed.insert(Layout::Compact(e));
    }
    needed
}

/// Buffers a kernel reads and writes (with where), and the layouts it needs.
type Access = (Vec<(Location, BufferId)>, Vec<(Location, BufferId)>, BTreeSet<Layout>);

impl<'a> Verifier<'a> {
    fn gemm(&mut self, k: KernelId, g: &'a Gemm) -> Access {
        let at = Location::Kernel(k);
        let mut needed = segment_layouts(g.rows, g.segment);
        let mut reads = vec![(at.clone(), g.a), (at.clone(), g.b)];
        for e in &g.epilogue {
            if let Epilogue::Scale { buf, index } | Epilogue::Add { buf, index } = e {
                reads.push((at.clone(), *buf));
                if let RowIndex::EdgeToCompact(ep) = index {
                    needed.insert(Layout::Compact(*ep));
                }
            }
        }
        if let RowIndex::EdgeToCompact(ep) = g.gather {
            needed.insert(Layout::Compact(ep));
        }
        let writes = vec![(at.clone(), g.c)];
        let (a, b, c) = (self.buf(&at, g.a), self.buf(&at, g.b), self.buf(&at, g.c));
        if let (Some(a), Some(b), Some(c)) = (a, b, c) {
            self.gemm_operands(&at, g, a, b, c);
        }
        self.gemm_epilogue(&at, g, c);
        (reads, writes, needed)
    }

    /// Invariants 6 and 7 (output rows) of a gemm whose buffers exist.
    fn gemm_operands(&mut self, at: &Location, g: &Gemm, a: &Buffer, b: &Buffer, c: &Buffer) {
        if let Err(why) = check_index(g.rows, g.gather, a.rows) {
            self.push(at.clone(), 6, format!("a {}: {why}", g.a));
        }
        if check_select(domain(g.rows), &domain(b.rows), g.segment).is_err() {
            let msg = format!(
                "b {}: {} rows cannot select {} rows by {}",
                g.b,
                row_space(g.rows),
                row_space(b.rows),
                g.segment
            );
            self.push(at.clone(), 6, msg);
        }
        match shape::linear(&a.shape, &b.shape) {
            None => {
                let msg = format!("cannot multiply a {} row by a {} slice", a.shape, b.shape);
                self.push(at.clone(), 6, msg);
            }
            Some((out, f)) => {
                if f != g.form {
                    let msg =
                        format!("form {} differs from the operands' {}", form(&g.form), form(&f));
                    self.push(at.clone(), 6, msg);
                }
                if c.shape != out {
                    let msg = format!("c {} has shape {}, the product {out}", g.c, c.shape);
                    self.push(at.clone(), 6, msg);
                }
            }
        }
        match g.store {
            StoreMode::Write if c.rows != g.rows => {
                let msg = format!(
                    "c {} has {} rows, the iteration {}",
                    g.c,
                    row_space(c.rows),
                    row_space(g.rows)
                );
                self.push(at.clone(), 7, msg);
            }
            StoreMode::AddIntoCompact(_) => {
                let msg = "a gemm does not add into compact rows (a traversal does)".to_string();
                self.push(at.clone(), 7, msg);
            }
            StoreMode::AddIntoDst | StoreMode::AddIntoSrc
                if !g.store.stores_from(g.rows) || c.rows != RowSpace::Nodes =>
            {
                let msg = format!(
                    "{} adds {} rows into nodes rows, not {} rows into {} rows",
                    crate::plan_text::store_mode(g.store),
                    g.store.sources(),
                    row_space(g.rows),
                    row_space(c.rows)
                );
                self.push(at.clone(), 7, msg);
            }
            _ => {}
        }
    }

    /// Invariant 15: a weight gradient's operands and output.
    fn weight_grad(&mut self, k: KernelId, g: &'a WeightGrad) -> Access {
        let at = Location::Kernel(k);
        let mut needed = segment_layouts(g.rows, g.segment);
        let mut reads = vec![(at.clone(), g.b.0)];
        let mut indices = vec![g.b];
        if let Some(a) = g.a {
            reads.push((at.clone(), a.0));
            indices.push(a);
        }
        for &(buf, index) in &indices {
            if let RowIndex::EdgeToCompact(ep) = index {
                needed.insert(Layout::Compact(ep));
            }
            let Some(b) = self.buf(&at, buf) else { continue };
            if let Err(why) = check_index(g.rows, index, b.rows) {
                self.push(at.clone(), 15, format!("{buf}: {why}"));
            }
        }
        let (b, c) = (self.buf(&at, g.b.0), self.buf(&at, g.c));
        let a = g.a.and_then(|(a, _)| self.buf(&at, a));
        if let (Some(b), Some(c)) = (b, c) {
            if check_select(domain(g.rows), &domain(c.rows), g.segment).is_err() {
                let msg = format!(
                    "c {}: {} rows cannot select {} rows by {}",
                    g.c,
                    row_space(g.rows),
                    row_space(c.rows),
                    g.segment
                );
                self.push(at.clone(), 15, msg);
            }
            let product = match (g.a, a) {
                (None, _) => Some((
                    c.shape.clone(),
                    crate::shape::LinearForm::Plain { k: 1, n: c.shape.numel() },
                )),
                (Some(_), Some(a)) => shape::linear(&a.shape, &c.shape),
                (Some(_), None) => None,
            };
            match product {
                Some((out, f)) if out == b.shape && f == g.form => {}
                Some((out, f)) => {
                    let msg = format!(
                        "b {} of shape {} and form {} do not match the product's {out} and {}",
                        g.b.0,
                        b.shape,
                        form(&g.form),
                        form(&f)
                    );
                    self.push(at.clone(), 15, msg);
                }
                None if g.a.is_some() && a.is_some() => {
                    let msg = format!("c {} of shape {} is not a weight of a", g.c, c.shape);
                    self.push(at.clone(), 15, msg);
                }
                None => {}
            }
        }
        (reads, vec![(at, g.c)], needed)
    }

    /// Invariant 7 (epilogue) of a gemm.
    fn gemm_epilogue(&mut self, at: &Location, g: &Gemm, c: Option<&Buffer>) {
        for e in &g.epilogue {
            let (name, buf, index) = match e {
                Epilogue::Scale { buf, index } => ("scale", *buf, *index),
                Epilogue::Add { buf, index } => ("add", *buf, *index),
                Epilogue::Unary(_) => continue,
            };
            let Some(eb) = self.buf(at, buf) else { continue };
            if let Err(why) = check_index(g.rows, index, eb.rows) {
                self.push(at.clone(), 7, format!("{name} {buf}: {why}"));
            }
            if name == "scale" && eb.shape.numel() != 1 {
                let msg = format!("scale {buf}: rows of shape {} are not scalars", eb.shape);
                self.push(at.clone(), 7, msg);
            }
            if let (true, Some(c)) = (name == "add", c) {
                if shape::broadcast(&c.shape, &eb.shape).as_ref() != Some(&c.shape) {
                    let msg =
                        format!("add {buf}: shape {} does not broadcast to {}", eb.shape, c.shape);
                    self.push(at.clone(), 7, msg);
                }
            }
        }
    }
}
