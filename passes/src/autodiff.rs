//! `autodiff`: reverse-mode differentiation of an inter-operator module, as a pass over the IR.
//!
//! [`differentiate`] appends to a forward module the instructions that compute the gradient of
//! `sum over outputs o of <o, seed_o>` with respect to every weight (and the inputs asked for),
//! where each `seed_o` is a new input `grad:<o>` of the output's type. Adjoints are built in
//! reverse definition order; each operator's derivative rule lives in one place, `rules.rs`, and
//! emits ordinary IR (forward operators plus the derivative operators of `pigeon_ir::inter`), so
//! the reference interpreter runs the result unchanged and the optimiser sees plain IR.
//! Only values that depend on a weight or a requested input get an adjoint.
//!
//! [`split`] then cuts the result into a forward module and a backward module. Forward values
//! the backward reads are *saved*: node and edge values become outputs `saved:vN` of the
//! forward module and inputs of the backward module; weight-like and shared values (a weight's
//! transpose, `sigmoid(skip[ntype])`) are recomputed instead, as they are weight-sized, and so
//! are gathers, slices and views (from their saved or recomputed operand), as saving an edge
//! gather of a node value would store a whole edge table to spare one read per edge. An edge
//! `linear` of inputs and weights reached through indexing only (`src.h @ W[relation]`) is
//! recomputed too: the pipeline computes it per (node, relation) pair with one GEMM, where
//! saving it writes an edge table in the forward pass and reads it in the backward.
//!
//! [`compile_split`] compiles both modules for a graph; where compact materialization computes
//! a saved edge value on compact rows in the optimised forward module, [`save_compact`] saves
//! the compact rows instead (`saved:vN@compact.src`) and the backward module reads them back
//! per edge (`compact_saved.rs`).
//!
//! ```text
//! before                                  after differentiate (outputs: out, grad:W)
//! v0 = input "h"      : node [4]          v0..v3 as before
//! v1 = weight w0      : relation [4, 2]   v4 = input "grad:out"        : node [2]
//! v2 = gather v0 by src : edge [4]        v5 = gather v4 by dst        : edge [2]
//! v3 = linear v2, v1 by relation          v6 = linear_grad v2, v5 by relation to relation [4, 2]
//! v4 = aggregate sum v3 : node [2]        output "grad:W" = v6
//! ```

mod compact_saved;
mod rules;

pub use compact_saved::{
    compact_saved_name, compile_for_graph, compile_split, save_compact, CompiledSplit,
};

use crate::PassError;
use pigeon_ir::infer::infer_type;
use pigeon_ir::InputKind;
use pigeon_ir::{Domain, EntityId, GraphStats, Inst, Module, Op, Type, ValueId, WeightId};
use std::collections::HashMap;

/// The prefix of seed inputs (`grad:out`) and of gradient outputs (`grad:l1.W`).
pub const GRAD: &str = "grad:";
/// The prefix of gradient outputs of inputs (`grad:input:h`).
pub const INPUT_GRAD: &str = "grad:input:";
/// The prefix of saved values (`saved:v12`): outputs of the forward module, inputs of the
/// backward module.
pub const SAVED: &str = "saved:";

/// A module extended with its gradients.
#[derive(Clone, Debug)]
pub struct Differentiated {
    /// The forward instructions, then the backward ones. Outputs: the forward outputs, then
    /// one gradient per weight (in declaration order), then one per requested input.
    pub module: Module,
    /// Number of forward instructions (the backward ones follow).
    pub forward_len: usize,
    /// `(forward output, seed input)`, one per output.
    pub seeds: Vec<(String, String)>,
    /// `(weight, gradient output)`.
    pub weight_grads: Vec<(WeightId, String)>,
    /// `(input, gradient output)`.
    pub input_grads: Vec<(String, String)>,
}

/// Differentiates `forward` with respect to all its weights and the inputs named in `inputs`.
pub fn differentiate(forward: &Module, inputs: &[&str]) -> Result<Differentiated, PassError> {
    crate::pipeline::verified(forward.clone(), "autodiff (input)")?;
    for name in inputs {
        if !forward.inputs().iter().any(|d| d.name == *name) {
            return Err(PassError::Unsupported(format!("no input `{name}` to differentiate by")));
        }
    }
    if let Some((v, inst)) = forward.insts.iter().find(|(_, i)| i.op.is_derivative()) {
        return Err(PassError::Unsupported(format!(
            "{v} (`{}`) is a derivative operator: second derivatives are not supported",
            pigeon_ir::text::op(&inst.op)
        )));
    }
    let mut e = Emitter { module: forward.clone() };
    let needs = needs_grad(forward, inputs);
    let mut adj: HashMap<ValueId, ValueId> = HashMap::new();
    let mut seeds = Vec::new();
    for (name, v) in forward.outputs.clone() {
        let seed = format!("{GRAD}{name}");
        let s = e.append(
            Op::Input { name: seed.clone(), kind: InputKind::Data },
            Some(forward.ty(v).clone()),
        )?;
        seeds.push((name, seed));
        if needs[v.index()] {
            e.accumulate(&mut adj, v, s)?;
        }
    }
    let order: Vec<(ValueId, &Inst)> = forward.insts.iter().collect();
    for &(v, inst) in order.iter().rev() {
        let Some(&g) = adj.get(&v) else { continue };
        for (x, contribution) in rules::adjoints(&mut e, v, &inst.op, g, &needs)? {
            let c = e.reduce_to(contribution, forward.ty(x))?;
            e.accumulate(&mut adj, x, c)?;
        }
    }
    let mut weight_grads = Vec::new();
    for (w, decl) in forward.weights.iter() {
        let uses: Vec<ValueId> = forward
            .insts
            .iter()
            .filter(|(_, i)| i.op == Op::Weight(w))
            .filter_map(|(v, _)| adj.get(&v).copied())
            .collect();
        let grad = match uses.split_first() {
            Some((&first, rest)) => rest.iter().try_fold(first, |acc, &g| e.add(acc, g))?,
            None => e.zeros_like_weight(w)?,
        };
        let name = format!("{GRAD}{}", decl.name);
        e.module.outputs.push((name.clone(), grad));
        weight_grads.push((w, name));
    }
    let mut input_grads = Vec::new();
    for name in inputs {
        let v = forward
            .insts
            .iter()
            .find(|(_, i)| matches!(&i.op, Op::Input { name: n, .. } if n == name))
            .map(|(v, _)| v)
            .ok_or_else(|| PassError::Unsupported(format!("no input `{name}`")))?;
        let grad = match adj.get(&v) {
            Some(&g) => g,
            None => {
                let zero = e.append(Op::Const(0.0), None)?;
                e.append(Op::Binary { op: pigeon_ir::BinaryOp::Mul, a: v, b: zero }, None)?
            }
        };
        let out = format!("{INPUT_GRAD}{name}");
        e.module.outputs.push((out.clone(), grad));
        input_grads.push((name.to_string(), out));
    }
    let module = crate::pipeline::verified(e.module, "autodiff")?;
    Ok(Differentiated {
        module,
        forward_len: forward.insts.len(),
        seeds,
        weight_grads,
        input_grads,
    })
}

/// For each value, whether it depends on a weight or on one of `inputs`.
fn needs_grad(m: &Module, inputs: &[&str]) -> Vec<bool> {
    let mut needs = vec![false; m.insts.len()];
    for (v, inst) in m.insts.iter() {
        needs[v.index()] = match &inst.op {
            Op::Weight(_) => true,
            Op::Input { name, .. } => inputs.contains(&name.as_str()),
            op => op.operands().iter().any(|x| needs.get(x.index()).copied().unwrap_or(false)),
        };
    }
    needs
}

/// Appends typed instructions to the module being differentiated.
pub(crate) struct Emitter {
    pub(crate) module: Module,
}

impl Emitter {
    /// Appends `op`, typed by inference (or `ty` for inputs).
    pub(crate) fn append(&mut self, op: Op, ty: Option<Type>) -> Result<ValueId, PassError> {
        let ty = match ty {
            Some(t) => t,
            None => {
                let m = &self.module;
                infer_type(&op, &|x| m.insts.get(x).map(|i| i.ty.clone())).map_err(|why| {
                    PassError::Internal {
                        pass: "autodiff",
                        message: format!("`{}` does not type: {why}", pigeon_ir::text::op(&op)),
                    }
                })?
            }
        };
        Ok(self.module.insts.push(Inst { op, ty, name: None }))
    }

    /// The type of `v`.
    pub(crate) fn ty(&self, v: ValueId) -> Type {
        self.module.ty(v).clone()
    }

    fn add(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, PassError> {
        self.append(Op::Binary { op: pigeon_ir::BinaryOp::Add, a, b }, None)
    }

    /// Adds `c` to the adjoint of `x`.
    fn accumulate(
        &mut self,
        adj: &mut HashMap<ValueId, ValueId>,
        x: ValueId,
        c: ValueId,
    ) -> Result<(), PassError> {
        let total = match adj.get(&x) {
            Some(&prev) => self.add(prev, c)?,
            None => c,
        };
        adj.insert(x, total);
        Ok(())
    }

    /// `c` summed down to the type of the operand it is the adjoint of: over broadcast axes
    /// (aligned at the front, or at the back for a vector against leading axes), and over all
    /// rows for a shared operand.
    fn reduce_to(&mut self, mut c: ValueId, target: &Type) -> Result<ValueId, PassError> {
        let ct = self.ty(c);
        if ct.shape != target.shape {
            use pigeon_ir::shape::broadcast;
            if broadcast(&target.shape, &ct.shape).as_ref() == Some(&ct.shape) {
                c = self.append(Op::SumTo { x: c, shape: target.shape.clone() }, None)?;
            } else {
                let pad = ct.shape.rank().saturating_sub(target.shape.rank());
                let mut aligned = vec![1; pad];
                aligned.extend_from_slice(target.shape.dims());
                c = self.append(Op::SumTo { x: c, shape: pigeon_ir::Shape(aligned) }, None)?;
                c = self.append(Op::View { x: c, shape: target.shape.clone() }, None)?;
            }
        }
        if self.ty(c).domain != target.domain {
            c = self.append(
                Op::SliceSum { x: c, by: pigeon_ir::Select::Same, domain: target.domain },
                None,
            )?;
        }
        Ok(c)
    }

    /// A zero gradient for a weight no output depends on.
    fn zeros_like_weight(&mut self, w: WeightId) -> Result<ValueId, PassError> {
        let decl = &self.module.weights[w];
        let ty = Type {
            domain: decl.kind.domain(),
            shape: decl.shape.clone(),
            dtype: pigeon_ir::DType::F32,
        };
        let wv = self.append(Op::Weight(w), Some(ty))?;
        let zero = self.append(Op::Const(0.0), None)?;
        self.append(Op::Binary { op: pigeon_ir::BinaryOp::Mul, a: wv, b: zero }, None)
    }
}

/// A forward value the backward module reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// Its name: the forward output and the backward input `saved:vN`, or
    /// `saved:vN@compact.src` once [`save_compact`] has moved it onto compact rows.
    pub name: String,
    /// The value in the forward module of its [`Split`].
    pub value: ValueId,
    /// Its type.
    pub ty: Type,
}

impl Saved {
    /// Bytes it takes in f32 on a graph of sizes `stats`.
    pub fn bytes(&self, stats: &GraphStats) -> usize {
        stats.rows(self.ty.domain).saturating_mul(self.ty.shape.numel()).saturating_mul(4)
    }
}

/// A differentiated module cut in two.
#[derive(Clone, Debug)]
pub struct Split {
    /// The forward module: the original outputs, then the saved values.
    pub forward: Module,
    /// The backward module: inputs are the forward's inputs it reads, the saved values and the
    /// seeds; outputs are the gradients.
    pub backward: Module,
    /// The saved values, in output order.
    pub saved: Vec<Saved>,
}

/// Cuts `d` into a forward and a backward module (see the module doc).
pub fn split(d: &Differentiated) -> Result<Split, PassError> {
    let m = &d.module;
    let n_outputs = m.outputs.len() - d.weight_grads.len() - d.input_grads.len();
    let mut fwd = Module { insts: Default::default(), ..m.clone() };
    for (_, inst) in m.insts.iter().take(d.forward_len) {
        fwd.insts.push(inst.clone());
    }
    fwd.outputs.truncate(n_outputs);
    let mut bwd = Module {
        name: format!("{}.backward", m.name),
        params: m.params.clone(),
        weights: m.weights.clone(),
        ..Module::default()
    };
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut saved = Vec::new();
    for (v, _) in m.insts.iter().skip(d.forward_len) {
        copy(m, d.forward_len, v, &mut bwd, &mut map, &mut saved)?;
    }
    for (name, v) in &m.outputs[n_outputs..] {
        let nv = match map.get(v) {
            Some(&nv) => nv,
            None => copy(m, d.forward_len, *v, &mut bwd, &mut map, &mut saved)?,
        };
        bwd.outputs.push((name.clone(), nv));
    }
    for s in &saved {
        fwd.outputs.push((s.name.clone(), s.value));
    }
    let forward = crate::pipeline::verified(fwd, "autodiff split (forward)")?;
    let backward =
        crate::pipeline::verified(crate::cleanup::cleanup(&bwd), "autodiff split (backward)")?;
    Ok(Split { forward, backward, saved })
}

/// Whether the backward pass recomputes forward value `v` rather than saving it: indexing
/// (an edge gather of a node value costs one read per edge but would save a whole edge table),
/// weight-sized values, and an edge `linear` of such values (`src.h @ W[relation]`: the
/// pipeline computes it once per (node, relation) pair, a GEMM, where saving it writes and
/// reads an edge table; node values are saved, as a node table costs what recomputing reads).
fn recomputed(m: &Module, v: ValueId) -> bool {
    let inst = &m.insts[v];
    // Inputs, weights and constants reached through indexing only.
    let leaf_indexing = |x: ValueId| {
        let mut x = x;
        loop {
            match m.insts[x].op {
                Op::Gather { x: y, .. } | Op::View { x: y, .. } => x = y,
                Op::Input { .. } | Op::Weight(_) | Op::Const(_) | Op::Slice { .. } => return true,
                _ => return m.ty(x).domain.is_weight_like(),
            }
        }
    };
    match inst.op {
        Op::Input { .. }
        | Op::Weight(_)
        | Op::Const(_)
        | Op::Gather { .. }
        | Op::Slice { .. }
        | Op::View { .. } => true,
        Op::Linear { x, w, .. } if inst.ty.domain.is_edge_like() => {
            leaf_indexing(x) && leaf_indexing(w)
        }
        _ => inst.ty.domain.is_weight_like(),
    }
}

/// Copies value `v` of `m` into `bwd` (after its operands), saving or recomputing forward
/// values; returns its id there.
fn copy(
    m: &Module,
    forward_len: usize,
    v: ValueId,
    bwd: &mut Module,
    map: &mut HashMap<ValueId, ValueId>,
    saved: &mut Vec<Saved>,
) -> Result<ValueId, PassError> {
    if let Some(&nv) = map.get(&v) {
        return Ok(nv);
    }
    let inst = &m.insts[v];
    let is_forward = v.index() < forward_len;
    let nv = if is_forward && !recomputed(m, v) {
        if !matches!(inst.ty.domain, Domain::Node | Domain::Edge) {
            return Err(PassError::Unsupported(format!(
                "{v} is a {} value the backward pass reads; only node and edge values are saved",
                inst.ty.domain
            )));
        }
        let name = format!("{SAVED}{v}");
        saved.push(Saved { name: name.clone(), value: v, ty: inst.ty.clone() });
        bwd.insts.push(Inst {
            op: Op::Input { name, kind: InputKind::Data },
            ty: inst.ty.clone(),
            name: inst.name.clone(),
        })
    } else {
        let mut op = inst.op.clone();
        for x in op.operands_mut() {
            *x = copy(m, forward_len, *x, bwd, map, saved)?;
        }
        bwd.insts.push(Inst { op, ty: inst.ty.clone(), name: inst.name.clone() })
    };
    map.insert(v, nv);
    Ok(nv)
}
