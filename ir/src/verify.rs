//! The verifier of the inter-operator IR: checks a [`Module`] against every invariant below and
//! reports all violations, each naming where it is (`v3`, `w1`, `output "out"`) and the number
//! of the invariant it breaks. Passes run it after every change in tests; the text parser and
//! [`ModuleBuilder::finish`](crate::builder::ModuleBuilder::finish) run it on what they produce.
//!
//! # Invariants
//!
//! 1. Parameter names are unique.
//! 2. Weight names are unique.
//! 3. No extent of a weight's shape is 0.
//! 4. Every operand of an instruction refers to an *earlier* instruction: definition order is a
//!    topological order (no self-reference, no forward reference, no dangling id).
//! 5. `Op::Weight(w)` names a declared weight, and the instruction's domain and shape are the
//!    weight's (`w.kind.domain()`, `w.shape`); its dtype is free.
//! 6. `Op::Input`'s domain is a row domain (`node`, `edge`, `compact.src`, `compact.dst`), a
//!    learned table's is `node` or compact, a dropout probability is in `[0, 1)`, and input
//!    names are unique.
//! 7. `Op::Concat` has at least one operand.
//! 8. Every other instruction's type equals [`infer_type`] of its operator. This covers, among
//!    others: gather indices read the right domain; `Slice` and `Linear` selectors are legal for
//!    the row and weight domains ([`check_select`](crate::infer::check_select)); element-wise
//!    operands share a domain or one is `shared`; shapes broadcast / contract / concatenate;
//!    `View` keeps the number of elements; softmax and aggregation take edge values.
//! 9. No extent of an instruction's type, nor of a `View`'s target shape, is 0.
//! 10. Every output refers to an existing value, and output names are unique.
//!
//! Invariant 8 is only checked for an instruction whose operands satisfy invariant 4, so one
//! bad operand is reported once.

use crate::infer::infer_type;
use crate::inter::InputKind;
use crate::inter::{Domain, Module, Op, Shape, ValueId, WeightId};
use crate::plan::{BufferId, KernelId, RegId};
use std::collections::HashSet;
use std::fmt;

/// Where in a module (or a kernel plan, see `plan_verify.rs`) a violation is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The module header (its parameters).
    Module,
    /// A weight declaration.
    Weight(WeightId),
    /// An instruction.
    Inst(ValueId),
    /// The `index`-th output, named `name`.
    Output {
        /// Position in [`Module::outputs`].
        index: usize,
        /// The output's name.
        name: String,
    },
    /// A buffer of a plan (`b2`).
    Buffer(BufferId),
    /// A kernel of a plan (`k3`).
    Kernel(KernelId),
    /// A statement of a traversal kernel (`k3.r4`).
    Stmt(KernelId, RegId),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Module => f.write_str("model"),
            Location::Weight(w) => write!(f, "{w}"),
            Location::Inst(v) => write!(f, "{v}"),
            Location::Output { name, .. } => write!(f, "output {name:?}"),
            Location::Buffer(b) => write!(f, "{b}"),
            Location::Kernel(k) => write!(f, "{k}"),
            Location::Stmt(k, r) => write!(f, "{k}.{r}"),
        }
    }
}

/// One violated invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Where the violation is.
    pub at: Location,
    /// The number of the invariant in this module's list.
    pub invariant: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (invariant {})", self.at, self.message, self.invariant)
    }
}

impl std::error::Error for VerifyError {}

/// Checks every invariant of the module doc; `Err` lists all violations, in module order
/// (header, weights, instructions, outputs).
pub fn verify(module: &Module) -> Result<(), Vec<VerifyError>> {
    let mut errs = Errors(Vec::new());
    check_header(module, &mut errs);
    check_weights(module, &mut errs);
    check_insts(module, &mut errs);
    check_outputs(module, &mut errs);
    if errs.0.is_empty() {
        Ok(())
    } else {
        Err(errs.0)
    }
}

struct Errors(Vec<VerifyError>);

impl Errors {
    fn push(&mut self, at: Location, invariant: u32, message: String) {
        self.0.push(VerifyError { at, invariant, message });
    }
}

fn check_header(m: &Module, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (name, _) in &m.params {
        if !seen.insert(name.as_str()) {
            errs.push(Location::Module, 1, format!("parameter {name:?} is declared twice"));
        }
    }
}

fn check_weights(m: &Module, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (id, w) in m.weights.iter() {
        if !seen.insert(w.name.as_str()) {
            errs.push(
                Location::Weight(id),
                2,
                format!("weight name {:?} is declared twice", w.name),
            );
        }
        if has_zero(&w.shape) {
            errs.push(Location::Weight(id), 3, format!("shape {} has an extent of 0", w.shape));
        }
    }
}

fn has_zero(s: &Shape) -> bool {
    s.0.contains(&0)
}

fn check_insts(m: &Module, errs: &mut Errors) {
    let mut inputs = HashSet::new();
    for (v, inst) in m.insts.iter() {
        let at = || Location::Inst(v);
        let mut operands_ok = true;
        for x in inst.op.operands() {
            if x >= v {
                operands_ok = false;
                let why = if x == v {
                    "itself"
                } else if m.insts.contains(x) {
                    "a later value"
                } else {
                    "no value"
                };
                errs.push(at(), 4, format!("operand {x} refers to {why}"));
            }
        }
        match &inst.op {
            Op::Weight(w) => match m.weights.get(*w) {
                None => errs.push(at(), 5, format!("weight {w} is not declared")),
                Some(decl) => {
                    let domain = decl.kind.domain();
                    if inst.ty.domain != domain || inst.ty.shape != decl.shape {
                        let msg = format!(
                            "type {} does not match weight {w} ({domain} {})",
                            inst.ty, decl.shape
                        );
                        errs.push(at(), 5, msg);
                    }
                }
            },
            Op::Input { name, kind } => {
                let domain = inst.ty.domain;
                if domain.is_weight_like() {
                    let msg = format!("input {name:?} is in domain {domain}, not a row domain");
                    errs.push(at(), 6, msg);
                } else if matches!(kind, InputKind::Table(_)) && domain == Domain::Edge {
                    let msg = format!(
                        "learned input {name:?} is in domain edge (tables are per node or per \
                         (node, relation) pair)"
                    );
                    errs.push(at(), 6, msg);
                }
                if let InputKind::Dropout(p) = kind {
                    if !(0.0..1.0).contains(p) {
                        let msg =
                            format!("dropout input {name:?} has probability {p}, not in [0, 1)");
                        errs.push(at(), 6, msg);
                    }
                }
                if !inputs.insert(name.as_str()) {
                    errs.push(at(), 6, format!("input name {name:?} is used twice"));
                }
            }
            Op::Concat { xs } if xs.is_empty() => {
                errs.push(at(), 7, "concat has no operand".to_string());
            }
            op if operands_ok => {
                let lookup = |x: ValueId| (x < v).then(|| m.insts[x].ty.clone());
                match infer_type(op, &lookup) {
                    Err(why) => errs.push(at(), 8, why),
                    Ok(ty) if ty != inst.ty => {
                        let msg =
                            format!("declared type {} differs from the inferred {ty}", inst.ty);
                        errs.push(at(), 8, msg);
                    }
                    Ok(_) => {}
                }
            }
            _ => {}
        }
        if has_zero(&inst.ty.shape) {
            errs.push(at(), 9, format!("type {} has an extent of 0", inst.ty));
        }
        if let Op::View { shape, .. } = &inst.op {
            if has_zero(shape) && *shape != inst.ty.shape {
                errs.push(at(), 9, format!("view shape {shape} has an extent of 0"));
            }
        }
    }
}

fn check_outputs(m: &Module, errs: &mut Errors) {
    let mut seen = HashSet::new();
    for (index, (name, v)) in m.outputs.iter().enumerate() {
        let at = || Location::Output { index, name: name.clone() };
        if !m.insts.contains(*v) {
            errs.push(at(), 10, format!("refers to {v}, which is not defined"));
        }
        if !seen.insert(name.as_str()) {
            errs.push(at(), 10, "output name is used twice".to_string());
        }
    }
}
