//! The e-graph language of the reordering pass: one e-node kind per inter-IR operator (with its
//! payload: selector, index, shape, ...), interned in a table, and the typing analysis that gives
//! every e-class the [`Type`] of the value it computes.
//!
//! An e-node is `(kind, children)`. The kind is an [`Op`] whose operands are positional
//! placeholders (`v0` for the first child, `v1` for the second, ...); kinds are interned by their
//! exact `Debug` text (which spells `f64` payloads exactly), so `RNode` is a small `Eq + Ord +
//! Hash` value as egg requires, and a rule can rebuild a real [`Op`] by putting class ids back.
//! Every operator of the IR has a kind, so instructions that no rule touches are ordinary opaque
//! e-nodes carrying their operands.

use egg::{Analysis, DidMerge, EGraph, Id, Language};
use pigeon_ir::infer::infer_type;
use pigeon_ir::{EntityId, Op, Type, ValueId};
use std::collections::{BTreeMap, HashMap};

/// An interned operator kind (an index into [`Kinds`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindId(pub u32);

/// An e-node: an operator kind and its operand e-classes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RNode {
    /// The operator, with its payload.
    pub kind: KindId,
    /// The operands, in the operator's order.
    pub args: Vec<Id>,
}

impl Language for RNode {
    type Discriminant = KindId;

    fn discriminant(&self) -> KindId {
        self.kind
    }
    fn matches(&self, other: &Self) -> bool {
        self.kind == other.kind && self.args.len() == other.args.len()
    }
    fn children(&self) -> &[Id] {
        &self.args
    }
    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.args
    }
}

/// `op` with its operands replaced, in order, by `new` (missing ones keep their old value).
pub fn with_operands(op: &Op, new: &[ValueId]) -> Op {
    let mut op = op.clone();
    let mut it = new.iter().copied();
    let put = |v: &mut ValueId| {
        if let Some(n) = it.next() {
            *v = n;
        }
    };
    op.operands_mut().into_iter().for_each(put);
    op
}

/// The placeholder operands `v0, v1, ...` for an operator of `n` operands.
pub fn placeholders(n: usize) -> Vec<ValueId> {
    (0..n).map(ValueId::new).collect()
}

/// The interned operator kinds.
#[derive(Clone, Debug, Default)]
pub struct Kinds {
    ops: Vec<Op>,
    index: HashMap<String, KindId>,
}

impl Kinds {
    /// The kind of `op` (whatever its operands), interning it on first use.
    pub fn intern(&mut self, op: &Op) -> KindId {
        let canon = with_operands(op, &placeholders(op.operands().len()));
        let key = format!("{canon:?}");
        if let Some(&k) = self.index.get(&key) {
            return k;
        }
        let k = KindId(u32::try_from(self.ops.len()).unwrap_or(u32::MAX));
        self.ops.push(canon);
        self.index.insert(key, k);
        k
    }
    /// The kind of `op` if it was interned before.
    pub fn intern_lookup(&self, op: &Op) -> Option<KindId> {
        let canon = with_operands(op, &placeholders(op.operands().len()));
        self.index.get(&format!("{canon:?}")).copied()
    }
    /// The operator of kind `k`, with placeholder operands.
    pub fn op(&self, k: KindId) -> Option<&Op> {
        self.ops.get(k.0 as usize)
    }
}

/// The e-class analysis: the type of each class, plus the pass's bookkeeping (the kind table,
/// the declared types of inputs and weights, which rules fired, type conflicts met).
#[derive(Clone, Debug, Default)]
pub struct Typing {
    /// The interned kinds.
    pub kinds: Kinds,
    /// Types of kinds that cannot be inferred (inputs and weights), from their declarations.
    pub leaf_types: HashMap<KindId, Type>,
    /// Per rule name, how many rewrites merged something new.
    pub fired: BTreeMap<&'static str, usize>,
    /// Unions of classes of different types (a bug in a rule; reported as an internal error).
    pub conflicts: Vec<String>,
    /// Whether the graph's relations each connect one node-type pair
    /// ([`pigeon_ir::GraphStats::typed_relations`]): then a node-type weight selected by an
    /// endpoint's type can be sliced into the relation domain and combined with a relation
    /// weight.
    pub typed_relations: bool,
}

/// The e-graph of the pass.
pub type Graph = EGraph<RNode, Typing>;

impl Typing {
    /// The type `op` would have with operands of types `tys`, or why it does not type-check.
    pub fn infer(&self, op: &Op, tys: &[Option<Type>]) -> Result<Type, String> {
        let op = with_operands(op, &placeholders(tys.len()));
        infer_type(&op, &|v: ValueId| tys.get(v.index()).cloned().flatten())
    }

    /// The type of an e-node whose children have types `tys`.
    pub fn node_type(&self, node: &RNode, tys: &[Option<Type>]) -> Option<Type> {
        if let Some(t) = self.leaf_types.get(&node.kind) {
            return Some(t.clone());
        }
        let op = self.kinds.op(node.kind)?;
        self.infer(op, tys).ok()
    }
}

impl Analysis<RNode> for Typing {
    type Data = Option<Type>;

    fn make(egraph: &mut Graph, enode: &RNode, _id: Id) -> Self::Data {
        let tys: Vec<Option<Type>> = enode.args.iter().map(|&c| egraph[c].data.clone()).collect();
        egraph.analysis.node_type(enode, &tys)
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        match (a.as_ref(), b) {
            (_, None) => DidMerge(false, a.is_some()),
            (None, Some(t)) => {
                *a = Some(t);
                DidMerge(true, false)
            }
            (Some(x), Some(y)) if *x == y => DidMerge(false, false),
            (Some(x), Some(y)) => {
                self.conflicts.push(format!("merged a {x} class with a {y} class"));
                DidMerge(false, true)
            }
        }
    }
}

/// The operator of e-node `n` (with placeholder operands).
pub fn op_of<'g>(g: &'g Graph, n: &RNode) -> Option<&'g Op> {
    g.analysis.kinds.op(n.kind)
}

/// The type of class `c`.
pub fn ty_of(g: &Graph, c: Id) -> Option<&Type> {
    g[c].data.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::{Select, UnaryOp};

    #[test]
    fn kinds_ignore_operands_and_keep_payloads() {
        let (a, b, c) = (ValueId::new(3), ValueId::new(7), ValueId::new(9));
        let mut k = Kinds::default();
        let l1 = k.intern(&Op::Linear { x: a, w: b, by: Select::Relation });
        let l2 = k.intern(&Op::Linear { x: c, w: a, by: Select::Relation });
        let l3 = k.intern(&Op::Linear { x: a, w: b, by: Select::Same });
        assert_eq!(l1, l2);
        assert_ne!(l1, l3);
        let e1 = k.intern(&Op::Unary { op: UnaryOp::Elu(1.0), x: a });
        let e2 = k.intern(&Op::Unary { op: UnaryOp::Elu(0.5), x: a });
        assert_ne!(e1, e2);
        assert_eq!(k.intern_lookup(&Op::Unary { op: UnaryOp::Elu(0.5), x: c }), Some(e2));
        assert_eq!(
            with_operands(&Op::Linear { x: a, w: b, by: Select::Same }, &[c, a]),
            Op::Linear { x: c, w: a, by: Select::Same }
        );
        assert_eq!(
            with_operands(&Op::Concat { xs: vec![a, a, a] }, &[b, c, a]),
            Op::Concat { xs: vec![b, c, a] }
        );
    }
}
