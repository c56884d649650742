//! [`ModuleBuilder`]: builds an inter-operator IR module by hand, one operator at a time, inferring
//! each result type with [`infer_type`] so that a module it finishes is well typed.
//!
//! ```
//! use pigeon_ir::builder::ModuleBuilder;
//! use pigeon_ir::{AggGroup, AggOp, Domain, Endpoint, Index, Init, Select, WeightKind};
//!
//! let mut b = ModuleBuilder::new("rgcn");
//! let h = b.input("h", Domain::Node, &[4])?;
//! let w = b.weight("W", WeightKind::PerRelation, &[4, 2], Init::Glorot)?;
//! let hs = b.gather(h, Index::Node(Endpoint::Src))?;
//! let m = b.linear(hs, w, Select::Relation)?;
//! b.name(m, "m");
//! let out = b.aggregate(AggOp::Mean, AggGroup::PerRelation, m)?;
//! b.output("out", out);
//! let module = b.finish()?;
//! assert_eq!(module.insts.len(), 5);
//! # Ok::<(), pigeon_ir::IrError>(())
//! ```

use crate::entity::EntityId;
use crate::error::IrError;
use crate::infer::infer_type;
use crate::inter::InputKind;
use crate::inter::{
    AggGroup, AggOp, BinaryOp, DType, Domain, Index, Init, Inst, Module, Op, Select, Shape, Type,
    UnaryOp, ValueId, Weight, WeightId, WeightKind,
};
use crate::verify::verify;

/// Appends instructions to a module under construction. Every method that adds an instruction
/// returns its value, or [`IrError::Type`] when the operands do not fit (then nothing is added).
#[derive(Clone, Debug, Default)]
pub struct ModuleBuilder {
    module: Module,
}

impl ModuleBuilder {
    /// An empty module named `name`, without parameters.
    pub fn new(name: &str) -> Self {
        Self { module: Module { name: name.to_string(), ..Module::default() } }
    }

    /// Records an integer parameter the model was instantiated with (for reading dumps only).
    pub fn param(&mut self, name: &str, value: i64) -> &mut Self {
        self.module.params.push((name.to_string(), value));
        self
    }

    /// A named `f32` data input in row `domain` (`node`, `edge`, compact) with per-row `shape`.
    pub fn input(
        &mut self,
        name: &str,
        domain: Domain,
        shape: &[usize],
    ) -> Result<ValueId, IrError> {
        if domain.is_weight_like() {
            let value = ValueId::new(self.module.insts.len());
            let message = format!("input {name:?} must be in a row domain, not {domain}");
            return Err(IrError::Type { value, message });
        }
        let ty = Type { domain, shape: Shape(shape.to_vec()), dtype: DType::F32 };
        Ok(self.push_typed(Op::Input { name: name.to_string(), kind: InputKind::Data }, ty))
    }

    /// A learned table `name` in row `domain` (`node` or compact) with per-row `shape`,
    /// initialised by `init`.
    pub fn table(
        &mut self,
        name: &str,
        domain: Domain,
        shape: &[usize],
        init: Init,
    ) -> Result<ValueId, IrError> {
        let v = self.input(name, domain, shape)?;
        self.module.insts[v].op =
            Op::Input { name: name.to_string(), kind: InputKind::Table(init) };
        Ok(v)
    }

    /// Declares a weight and returns the `f32` value holding it (in the kind's domain); a
    /// duplicate name or a 0 extent is an error.
    pub fn weight(
        &mut self,
        name: &str,
        kind: WeightKind,
        shape: &[usize],
        init: Init,
    ) -> Result<ValueId, IrError> {
        let shape = Shape(shape.to_vec());
        let problem = if self.module.weight_by_name(name).is_some() {
            Some(format!("weight {name:?} is already declared"))
        } else if shape.0.contains(&0) {
            Some(format!("weight {name:?} has an extent of 0 in {shape}"))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(IrError::Type { value: ValueId::new(self.module.insts.len()), message });
        }
        let w = self.module.weights.push(Weight { name: name.to_string(), kind, shape, init });
        Ok(self.weight_value(w))
    }

    /// Another value holding the already declared weight `w` (a weight may enter the graph more
    /// than once). An undeclared `w` is reported by [`finish`](Self::finish).
    pub fn weight_value(&mut self, w: WeightId) -> ValueId {
        let (domain, shape) = match self.module.weights.get(w) {
            Some(decl) => (decl.kind.domain(), decl.shape.clone()),
            None => (Domain::Shared, Shape::scalar()),
        };
        self.push_typed(Op::Weight(w), Type { domain, shape, dtype: DType::F32 })
    }

    /// A shared scalar constant.
    pub fn constant(&mut self, value: f64) -> Result<ValueId, IrError> {
        self.push(Op::Const(value))
    }

    /// Rows of the result read rows of `x` through `index`.
    pub fn gather(&mut self, x: ValueId, index: Index) -> Result<ValueId, IrError> {
        self.push(Op::Gather { x, index })
    }

    /// Rows of the weight-like `w`, selected by `by`, as a value of `domain`.
    pub fn slice(&mut self, w: ValueId, by: Select, domain: Domain) -> Result<ValueId, IrError> {
        self.push(Op::Slice { w, by, domain })
    }

    /// Typed linear `x @ w`, each row of `x` selecting its slice of `w` by `by`.
    pub fn linear(&mut self, x: ValueId, w: ValueId, by: Select) -> Result<ValueId, IrError> {
        self.push(Op::Linear { x, w, by })
    }

    /// Element-wise `op(x)`.
    pub fn unary(&mut self, op: UnaryOp, x: ValueId) -> Result<ValueId, IrError> {
        self.push(Op::Unary { op, x })
    }

    /// Element-wise `op(a, b)` with broadcasting.
    pub fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.push(Op::Binary { op, a, b })
    }

    /// Dot product over the last axis.
    pub fn dot(&mut self, a: ValueId, b: ValueId) -> Result<ValueId, IrError> {
        self.push(Op::Dot { a, b })
    }

    /// `x` with each row reshaped to `shape`.
    pub fn view(&mut self, x: ValueId, shape: &[usize]) -> Result<ValueId, IrError> {
        self.push(Op::View { x, shape: Shape(shape.to_vec()) })
    }

    /// Concatenation of `xs` along the last axis.
    pub fn concat(&mut self, xs: &[ValueId]) -> Result<ValueId, IrError> {
        self.push(Op::Concat { xs: xs.to_vec() })
    }

    /// Edge softmax of the edge value `x`.
    pub fn softmax(&mut self, x: ValueId) -> Result<ValueId, IrError> {
        self.push(Op::EdgeSoftmax { x })
    }

    /// Reduction of the edge value `x` into destination nodes.
    pub fn aggregate(
        &mut self,
        op: AggOp,
        group: AggGroup,
        x: ValueId,
    ) -> Result<ValueId, IrError> {
        self.push(Op::Aggregate { op, group, x })
    }

    /// Any operator other than `Input` and `Weight`, typed by [`infer_type`].
    pub fn push(&mut self, op: Op) -> Result<ValueId, IrError> {
        let insts = &self.module.insts;
        let value = ValueId::new(insts.len());
        let ty = infer_type(&op, &|v| insts.get(v).map(|i| i.ty.clone()))
            .map_err(|message| IrError::Type { value, message })?;
        Ok(self.push_typed(op, ty))
    }

    /// Sets the source-level name of `v` (shown in dumps); ignored for a `v` not built here.
    pub fn name(&mut self, v: ValueId, name: &str) -> &mut Self {
        if let Some(inst) = self.module.insts.get_mut(v) {
            inst.name = Some(name.to_string());
        }
        self
    }

    /// Declares `v` an output named `name`.
    pub fn output(&mut self, name: &str, v: ValueId) -> &mut Self {
        self.module.outputs.push((name.to_string(), v));
        self
    }

    /// The type of an already built value.
    pub fn ty(&self, v: ValueId) -> Option<&Type> {
        self.module.insts.get(v).map(|i| &i.ty)
    }

    /// The module built so far, unverified.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The module, after [`verify`] found no violation ([`IrError::Invalid`] lists them all).
    pub fn finish(self) -> Result<Module, IrError> {
        verify(&self.module).map_err(IrError::Invalid)?;
        Ok(self.module)
    }

    fn push_typed(&mut self, op: Op, ty: Type) -> ValueId {
        self.module.insts.push(Inst { op, ty, name: None })
    }
}
