//! The rewrite table of the reordering pass: each rule finds, in one e-class, the operator
//! patterns it applies to and proposes equal expressions ([`Tpl`]); a proposal is only added
//! when every rebuilt operator type-checks ([`pigeon_ir::infer::infer_type`], through the
//! analysis) and its type is the class's own. The legality conditions a type check cannot see
//! (which contraction form a `linear` takes, which selectors may be combined) are checked by the
//! rules themselves.
//!
//! Notation: `x @ W[s]` is `linear x, W by s`; `a[s]` a weight sliced per row by selector `s`;
//! weight-domain operands (`W`, `V`, `a`) live in the `shared`, `relation` or `ntype` domain.

use super::lang::{op_of, ty_of, Graph, RNode};
use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use pigeon_ir::shape::{self, LinearForm};
use pigeon_ir::{BinaryOp, Domain, EntityId, Index, Op, Select, Shape, Type, ValueId};

/// One rewrite rule: its kebab-case name and its finder.
#[derive(Copy, Clone)]
pub struct Rule {
    /// The name reported when it fires.
    pub name: &'static str,
    /// The equal expressions it proposes for an e-class.
    find: fn(&Graph, Id) -> Vec<Tpl>,
}

/// The rules, by theme: weight products first, then moving linears across gathers, then the
/// distributivity that lets chains with biases reach the products.
pub const RULES: &[Rule] = &[
    // dot(x @ W[s], a[s]) = x @ M[s],  M = dot(W, view(a, [1, ..a.shape]))
    // (W [K, H.., D], a [H.., D] -> M [K, H..]; a may also be shared, or W shared and a sliced)
    Rule { name: "dot-linear-to-weight", find: dot_linear_to_weight },
    // (x @ W[s]) @ V[s'] = x @ (W @ V)[s'']   (same selector, or one of W, V shared)
    Rule { name: "linear-chain", find: linear_chain },
    // gather(h, ep) @ W[ep.ntype] = gather(h @ W[ntype], ep)   (also W shared)
    Rule { name: "gather-linear-swap", find: gather_linear_swap },
    // gather(h @ W[ntype], ep) = gather(h, ep) @ W[ep.ntype]   (the reverse; also W shared)
    Rule { name: "linear-gather-swap", find: linear_gather_swap },
    // gather(a + b, ep) = gather(a, ep) + gather(b, ep);  gather(c[ntype], ep) = c[ep.ntype]
    Rule { name: "gather-distribute", find: gather_distribute },
    // (a + b) @ V[s] = a @ V[s] + b @ V[s]   (and the same for `-`)
    Rule { name: "linear-distribute", find: linear_distribute },
    // b[s] @ V[s'] = (b @ V)[s'']   (a sliced weight times a weight: computed once per slice)
    Rule { name: "slice-linear-hoist", find: slice_linear_hoist },
];

/// An expression to add to the e-graph: an existing class, or an operator over expressions.
#[derive(Clone, Debug)]
pub enum Tpl {
    /// An existing e-class.
    Class(Id),
    /// A new operator (its own operands are ignored; the children are the operands, in order).
    Node(Op, Vec<Tpl>),
}

/// A placeholder operand for building [`Op`]s whose operands are given separately.
fn p() -> ValueId {
    ValueId::new(0)
}

fn lin(x: Tpl, w: Tpl, by: Select) -> Tpl {
    Tpl::Node(Op::Linear { x: p(), w: p(), by }, vec![x, w])
}

/// The type of `t`, inferring every new operator from its children.
pub fn tpl_type(g: &Graph, t: &Tpl) -> Result<Type, String> {
    match t {
        Tpl::Class(c) => ty_of(g, *c).cloned().ok_or_else(|| format!("class {c} has no type")),
        Tpl::Node(op, kids) => {
            let tys =
                kids.iter().map(|k| tpl_type(g, k).map(Some)).collect::<Result<Vec<_>, _>>()?;
            g.analysis.infer(op, &tys)
        }
    }
}

/// Adds `t` to the e-graph and returns its class.
pub fn add_tpl(g: &mut Graph, t: &Tpl) -> Id {
    match t {
        Tpl::Class(c) => *c,
        Tpl::Node(op, kids) => {
            let args = kids.iter().map(|k| add_tpl(g, k)).collect();
            let kind = g.analysis.kinds.intern(op);
            g.add(RNode { kind, args })
        }
    }
}

/// The proposals of `rule` for class `c` whose type is the class's.
fn accepted(rule: &Rule, g: &Graph, c: Id) -> Vec<Tpl> {
    let c = g.find(c);
    let Some(want) = ty_of(g, c) else { return Vec::new() };
    (rule.find)(g, c).into_iter().filter(|t| tpl_type(g, t).as_ref() == Ok(want)).collect()
}

/// The egg searcher and applier of a [`Rule`]: the searcher matches a class with at least one
/// accepted proposal, the applier adds them all and merges them into the class.
struct RuleImpl(Rule);

fn class_var() -> Var {
    Var::from(0u32)
}

impl Searcher<RNode, super::lang::Typing> for RuleImpl {
    fn search_eclass_with_limit(
        &self,
        egraph: &Graph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, RNode>> {
        if limit == 0 || accepted(&self.0, egraph, eclass).is_empty() {
            return None;
        }
        let mut subst = Subst::with_capacity(1);
        subst.insert(class_var(), eclass);
        Some(SearchMatches { eclass, substs: vec![subst], ast: None })
    }
    fn vars(&self) -> Vec<Var> {
        vec![class_var()]
    }
}

impl Applier<RNode, super::lang::Typing> for RuleImpl {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        _subst: &Subst,
        _ast: Option<&PatternAst<RNode>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for t in accepted(&self.0, egraph, eclass) {
            let id = add_tpl(egraph, &t);
            if egraph.union(id, eclass) {
                *egraph.analysis.fired.entry(self.0.name).or_insert(0) += 1;
                changed.push(egraph.find(eclass));
            }
        }
        changed
    }
}

/// The egg rewrites of [`RULES`].
pub fn rewrites() -> Result<Vec<Rewrite<RNode, super::lang::Typing>>, String> {
    RULES.iter().map(|r| Rewrite::new(r.name, RuleImpl(*r), RuleImpl(*r))).collect()
}

// ---------------------------------------------------------------------------------------------
// Matching helpers.

/// The operator and operands of every e-node of class `c`.
fn nodes(g: &Graph, c: Id) -> Vec<(&Op, Vec<Id>)> {
    g[c].nodes.iter().filter_map(|n| Some((op_of(g, n)?, n.args.clone()))).collect()
}

/// The `linear x, w by s` e-nodes of class `c`, as `(x, w, s)`.
fn linears(g: &Graph, c: Id) -> Vec<(Id, Id, Select)> {
    nodes(g, c)
        .into_iter()
        .filter_map(|(op, a)| match op {
            Op::Linear { by, .. } if a.len() == 2 => Some((a[0], a[1], *by)),
            _ => None,
        })
        .collect()
}

fn shape_of(g: &Graph, c: Id) -> Option<&Shape> {
    ty_of(g, c).map(|t| &t.shape)
}

fn domain_of(g: &Graph, c: Id) -> Option<Domain> {
    ty_of(g, c).map(|t| t.domain)
}

/// The variant of the contraction `x @ w` (see [`LinearForm`]).
fn form(x: &Shape, w: &Shape) -> Option<std::mem::Discriminant<LinearForm>> {
    shape::linear(x, w).map(|(_, f)| std::mem::discriminant(&f))
}

/// Brings two weight-domain operands, `w` read by selector `sw` and `v` read by `sv`, into one
/// weight domain: returns the operands to combine there and the selector of the combination.
/// Legal when both are shared, one is shared, or both are read by the same selector from the
/// same domain. With `lift`, a shared `w` combined with a selected `v` is first sliced into
/// `v`'s domain (a `linear` needs its row operand in the result's domain).
fn combine(
    g: &Graph,
    (w, sw): (Id, Select),
    (v, sv): (Id, Select),
    lift: bool,
) -> Option<(Tpl, Tpl, Select)> {
    let (dw, dv) = (domain_of(g, w)?, domain_of(g, v)?);
    if !dw.is_weight_like() || !dv.is_weight_like() {
        return None;
    }
    match (dw == Domain::Shared, dv == Domain::Shared) {
        (true, true) => Some((Tpl::Class(w), Tpl::Class(v), Select::Same)),
        (true, false) if lift => {
            let lifted =
                Tpl::Node(Op::Slice { w: p(), by: Select::Same, domain: dv }, vec![Tpl::Class(w)]);
            Some((lifted, Tpl::Class(v), sv))
        }
        (true, false) => Some((Tpl::Class(w), Tpl::Class(v), sv)),
        (false, true) => Some((Tpl::Class(w), Tpl::Class(v), sw)),
        (false, false) if sw == sv && dw == dv => Some((Tpl::Class(w), Tpl::Class(v), sw)),
        // On a graph whose relations each connect one node-type pair, a node-type weight read
        // by an endpoint's type is a relation weight: slice it into the relation domain.
        (false, false) if g.analysis.typed_relations => {
            let per_relation = |x: Id, s: Select, d: Domain| match (d, s) {
                (Domain::NodeType, Select::SrcType | Select::DstType) => Some(Tpl::Node(
                    Op::Slice { w: p(), by: s, domain: Domain::Relation },
                    vec![Tpl::Class(x)],
                )),
                (Domain::Relation, Select::Relation) => Some(Tpl::Class(x)),
                _ => None,
            };
            Some((per_relation(w, sw, dw)?, per_relation(v, sv, dv)?, Select::Relation))
        }
        _ => None,
    }
}

/// The weight-domain sources of a row value `a`: `a` itself when it is weight-like, and `A`
/// for every `slice A by s to <row domain>` e-node in its class.
fn weight_sources(g: &Graph, a: Id, rows: Domain) -> Vec<(Id, Select)> {
    let mut out = Vec::new();
    if domain_of(g, a).is_some_and(|d| d.is_weight_like()) {
        out.push((a, Select::Same));
    }
    for (op, args) in nodes(g, a) {
        if let Op::Slice { by, domain, .. } = op {
            if *domain == rows {
                out.push((args[0], *by));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// `dot(x @ W[s], a) -> x @ dot(W, view(a, v))[s]` for a plain contraction (`x` a vector),
/// where `v` is `a`'s shape with a leading 1 (the contracted `K` axis of `W`) and 1s before the
/// last axis up to `W`'s rank, so that the dot broadcasts exactly as the original (front
/// alignment): `M[k, j..] = sum_d W[k, j.., d] a[j.., d]`, hence
/// `sum_k x[k] M[k, j..] = sum_d (x @ W)[j.., d] a[j.., d]`.
fn dot_linear_to_weight(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (op, args) in nodes(g, c) {
        if !matches!(op, Op::Dot { .. }) || args.len() != 2 {
            continue;
        }
        for (z, a) in [(args[0], args[1]), (args[1], args[0])] {
            let (Some(zt), Some(at)) = (ty_of(g, z), ty_of(g, a)) else { continue };
            let (zr, ar) = (zt.shape.rank(), at.shape.rank());
            if ar == 0 || ar > zr {
                continue;
            }
            let dims = at.shape.dims();
            let mut view = vec![1];
            view.extend_from_slice(&dims[..ar - 1]);
            view.resize(zr, 1); // pad with 1s before the last axis: rank zr + 1, as W
            view.push(dims[ar - 1]);
            for (x, w, s) in linears(g, z) {
                if shape_of(g, x).map(Shape::rank) != Some(1) {
                    continue; // only the plain form `[K] x [K, ..]`
                }
                for (aw, sa) in weight_sources(g, a, zt.domain) {
                    let Some((w2, a2, sel)) = combine(g, (w, s), (aw, sa), false) else { continue };
                    let viewed =
                        Tpl::Node(Op::View { x: p(), shape: Shape(view.clone()) }, vec![a2]);
                    let m = Tpl::Node(Op::Dot { a: p(), b: p() }, vec![w2, viewed]);
                    out.push(lin(Tpl::Class(x), m, sel));
                }
            }
        }
    }
    out
}

/// `(x @ W[s]) @ V[s'] -> x @ (W @ V)[s'']` when `V` is a matrix applied to the last axis of
/// `x @ W` (`V` of rank 2: the plain or broadcast form), so `W @ V` is the broadcast product in
/// the weight domain and `x @ (W @ V)` contracts the same way `x @ W` did.
fn linear_chain(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (y, v, s2) in linears(g, c) {
        let Some(vs) = shape_of(g, v) else { continue };
        // A batched `V` with one batch (`[1.., D, N]`, one head) is the matrix `[D, N]`.
        let (v_tpl, vs) = match vs.dims() {
            [d, n] => (Tpl::Class(v), Shape(vec![*d, *n])),
            [lead @ .., d, n] if lead.iter().all(|&l| l == 1) => {
                let m = Shape(vec![*d, *n]);
                (Tpl::Node(Op::View { x: p(), shape: m.clone() }, vec![Tpl::Class(v)]), m)
            }
            _ => continue,
        };
        let vs = &vs;
        for (x, w, s1) in linears(g, y) {
            let (Some(xs), Some(ws)) = (shape_of(g, x), shape_of(g, w)) else { continue };
            let mut ps = ws.dims().to_vec();
            if let Some(last) = ps.last_mut() {
                *last = vs.dims()[1];
            }
            if form(xs, ws).is_none() || form(xs, ws) != form(xs, &Shape(ps)) {
                continue;
            }
            let Some((w2, v2, sel)) = combine(g, (w, s1), (v, s2), true) else { continue };
            let v2 = match &v_tpl {
                Tpl::Node(view, _) => Tpl::Node(view.clone(), vec![v2]),
                Tpl::Class(_) => v2,
            };
            out.push(lin(Tpl::Class(x), lin(w2, v2, Select::Same), sel));
        }
    }
    out
}

/// The endpoint a gather from the node domain reads.
fn node_gather(op: &Op) -> Option<(Index, pigeon_ir::Endpoint)> {
    match op {
        Op::Gather { index: i @ (Index::Node(ep) | Index::CompactNode(ep)), .. } => Some((*i, *ep)),
        _ => None,
    }
}

/// `gather(h, ep) @ W[by] -> gather(h @ W[node_by], ep)`: a weight selected by the type of the
/// gathered endpoint (or shared) depends on the node only, so the product can be computed once
/// per node.
fn gather_linear_swap(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (y, w, s) in linears(g, c) {
        let Some(dw) = domain_of(g, w) else { continue };
        for (op, args) in nodes(g, y) {
            let Some((index, ep)) = node_gather(op) else { continue };
            let node_by = match (dw, s) {
                (Domain::Shared, Select::Same) => Select::Same,
                (Domain::NodeType, Select::SrcType) if ep == pigeon_ir::Endpoint::Src => {
                    Select::NodeType
                }
                (Domain::NodeType, Select::DstType) if ep == pigeon_ir::Endpoint::Dst => {
                    Select::NodeType
                }
                _ => continue,
            };
            let per_node = lin(Tpl::Class(args[0]), Tpl::Class(w), node_by);
            out.push(Tpl::Node(Op::Gather { x: p(), index }, vec![per_node]));
        }
    }
    out
}

/// `gather(h @ W[node_by], ep) -> gather(h, ep) @ W[by]`, the reverse of
/// [`gather_linear_swap`] (pays off when a graph has more nodes than edges).
fn linear_gather_swap(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (op, args) in nodes(g, c) {
        let Some((index, ep)) = node_gather(op) else { continue };
        for (h, w, node_by) in linears(g, args[0]) {
            let by = match (domain_of(g, w), node_by) {
                (Some(Domain::Shared), Select::Same) => Select::Same,
                (Some(Domain::NodeType), Select::NodeType) => match ep {
                    pigeon_ir::Endpoint::Src => Select::SrcType,
                    pigeon_ir::Endpoint::Dst => Select::DstType,
                },
                _ => continue,
            };
            let gathered = Tpl::Node(Op::Gather { x: p(), index }, vec![Tpl::Class(h)]);
            out.push(lin(gathered, Tpl::Class(w), by));
        }
    }
    out
}

/// `gather(a ± b, ep) -> gather(a, ep) ± gather(b, ep)` (a shared term stays as it is) and
/// `gather(slice c by ntype to node, ep) -> slice c by ep.ntype`: a gather from the nodes moves
/// below sums and node-type slices, so that a bias added to a per-node product does not hide
/// the product from `linear-gather-swap` and `linear-chain` (HGT's `src.K @ k_rel[relation]`,
/// `K = h @ Wk[ntype] + bk[ntype]`).
fn gather_distribute(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    let Some(dc) = domain_of(g, c) else { return out };
    for (op, args) in nodes(g, c) {
        let Some((index, ep)) = node_gather(op) else { continue };
        let gathered = |t: Id| match domain_of(g, t) {
            Some(Domain::Node) => {
                Some(Tpl::Node(Op::Gather { x: p(), index }, vec![Tpl::Class(t)]))
            }
            Some(Domain::Shared) => Some(Tpl::Class(t)),
            _ => None,
        };
        for (yop, yargs) in nodes(g, args[0]) {
            match yop {
                Op::Binary { op: bop @ (BinaryOp::Add | BinaryOp::Sub), .. } => {
                    let (Some(a), Some(b)) = (gathered(yargs[0]), gathered(yargs[1])) else {
                        continue;
                    };
                    out.push(Tpl::Node(Op::Binary { op: *bop, a: p(), b: p() }, vec![a, b]));
                }
                Op::Slice { by: Select::NodeType, domain: Domain::Node, .. } => {
                    let by = match ep {
                        pigeon_ir::Endpoint::Src => Select::SrcType,
                        pigeon_ir::Endpoint::Dst => Select::DstType,
                    };
                    let slice = Op::Slice { w: p(), by, domain: dc };
                    out.push(Tpl::Node(slice, vec![Tpl::Class(yargs[0])]));
                }
                _ => {}
            }
        }
    }
    out
}

/// `(a ± b) @ V[s] -> a @ V[s] ± b @ V[s]`, when both terms have the sum's rank and contracted
/// extent (a term broadcast along leading axes stays broadcast after the product) and contract
/// in the same form as the sum. A shared term `c` becomes `slice c by same` in the sum's domain
/// first (the same value on every row), so that `slice-linear-hoist` can take it further.
fn linear_distribute(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (y, v, s) in linears(g, c) {
        let (Some(ys), Some(vs)) = (shape_of(g, y), shape_of(g, v)) else { continue };
        let f = form(ys, vs);
        for (op, args) in nodes(g, y) {
            let Op::Binary { op: bop @ (BinaryOp::Add | BinaryOp::Sub), .. } = op else {
                continue;
            };
            let fits = args.iter().all(|&t| {
                shape_of(g, t).is_some_and(|ts| {
                    ts.rank() == ys.rank()
                        && ts.dims().last() == ys.dims().last()
                        && form(ts, vs) == f
                })
            });
            if !fits {
                continue;
            }
            // A shared term broadcast over the rows is read per row by a `slice`, so that its
            // product can select `V` like the other term does.
            let Some(dy) = domain_of(g, y) else { continue };
            let term = |t: Id| match domain_of(g, t) {
                Some(Domain::Shared) if dy != Domain::Shared => Tpl::Node(
                    Op::Slice { w: p(), by: Select::Same, domain: dy },
                    vec![Tpl::Class(t)],
                ),
                _ => Tpl::Class(t),
            };
            let a = lin(term(args[0]), Tpl::Class(v), s);
            let b = lin(term(args[1]), Tpl::Class(v), s);
            out.push(Tpl::Node(Op::Binary { op: *bop, a: p(), b: p() }, vec![a, b]));
        }
    }
    out
}

/// `(slice B by sb) @ V[s] -> slice (B @ V) by s''`: the product of a sliced weight with a
/// weight is computed once per weight row, then sliced.
fn slice_linear_hoist(g: &Graph, c: Id) -> Vec<Tpl> {
    let mut out = Vec::new();
    for (y, v, s) in linears(g, c) {
        for (op, args) in nodes(g, y) {
            let Op::Slice { by: sb, domain, .. } = op else { continue };
            if domain.is_weight_like() {
                continue; // a slice between weight domains is already computed per weight row
            }
            let Some((b2, v2, sel)) = combine(g, (args[0], *sb), (v, s), true) else { continue };
            let product = lin(b2, v2, Select::Same);
            out.push(Tpl::Node(Op::Slice { w: p(), by: sel, domain: *domain }, vec![product]));
        }
    }
    out
}
