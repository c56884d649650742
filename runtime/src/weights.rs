//! Model weights: deterministic initialisation and safetensors files.
//!
//! A [`WeightStore`] holds one [`Tensor`] per declared weight ([`WeightId`]): one row for a
//! shared weight, one row per relation for `W[relation]`, one row per node type for `A[ntype]`,
//! each row a slice of the declared shape.
//!
//! Initialisation draws each weight from its own random stream, `Rng::for_stream(seed, name)`,
//! so adding a weight never changes the others. Glorot (Xavier) uniform samples
//! `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`, where `fan_in` is the slice's first axis
//! and `fan_out` the product of its other axes (as `docs/language.md` says). A rank-1 slice `[d]`
//! therefore has `fan_in = d`, `fan_out = 1` (the empty product); a scalar slice has
//! `fan_in = fan_out = 1`. Every slice of a per-relation or per-type weight uses the same fans.
//!
//! In safetensors files each weight is one tensor named exactly as the weight (`W`, `l1.W`), of
//! shape `[R, ..slice]` (per relation), `[T, ..slice]` (per node type) or `[..slice]` (shared),
//! in F32 or F64: the layout of PyTorch Geometric's `RGCNConv` (`weight [R, in, out]`,
//! `root [in, out]`, `bias [out]`). Files are written in F32.

use crate::error::{Result, RuntimeError};
use crate::io::write_atomic;
use crate::rng::Rng;
use crate::tensor::Tensor;
use pigeon_ir::{EntityId, Init, Module, Shape, WeightId, WeightKind};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// One weight's values and what they are.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightEntry {
    /// The weight's name (the safetensors key).
    pub name: String,
    /// How it is sliced.
    pub kind: WeightKind,
    /// The values: rows are slices (1, R or T of them), each of the declared slice shape.
    pub tensor: Tensor,
}

impl WeightEntry {
    /// The shape of this weight's tensor in a safetensors file.
    pub fn file_shape(&self) -> Vec<usize> {
        file_shape(self.kind, &self.tensor.shape, self.tensor.rows)
    }
}

/// The values of every weight of one module, indexed by [`WeightId`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WeightStore {
    entries: Vec<WeightEntry>,
}

/// The number of slices of a weight of `kind`.
fn slices(kind: WeightKind, num_relations: usize, num_node_types: usize) -> usize {
    match kind {
        WeightKind::Shared => 1,
        WeightKind::PerRelation => num_relations,
        WeightKind::PerNodeType => num_node_types,
    }
}

/// `[..slice]` for shared weights, `[rows, ..slice]` otherwise.
fn file_shape(kind: WeightKind, slice: &Shape, rows: usize) -> Vec<usize> {
    match kind {
        WeightKind::Shared => slice.0.clone(),
        WeightKind::PerRelation | WeightKind::PerNodeType => {
            let mut v = vec![rows];
            v.extend_from_slice(&slice.0);
            v
        }
    }
}

/// Glorot fans of one slice: first axis in, product of the others out; 1 and 1 for a scalar.
pub fn glorot_fans(slice: &Shape) -> (usize, usize) {
    match slice.dims().split_first() {
        None => (1, 1),
        Some((&first, rest)) => (first, rest.iter().product()),
    }
}

/// The Glorot uniform bound `sqrt(6 / (fan_in + fan_out))` of one slice.
pub fn glorot_limit(slice: &Shape) -> f64 {
    let (fi, fo) = glorot_fans(slice);
    (6.0 / (fi + fo).max(1) as f64).sqrt()
}

impl WeightStore {
    /// Like [`WeightStore::init`], but first checks that the weights fit in memory: sizes come
    /// from user parameters and graphs, so this is the entry point for them (a
    /// [`RuntimeError::TooLarge`] names the first weight that does not fit, or the total).
    pub fn try_init(
        module: &Module,
        num_relations: usize,
        num_node_types: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut total = 0u128;
        for w in module.weights.values() {
            let rows = slices(w.kind, num_relations, num_node_types);
            let bytes = crate::memory::f64_bytes(rows, w.shape.numel());
            crate::memory::check(
                || format!("weight `{}` ({rows} x {} f64)", w.name, w.shape),
                bytes,
            )?;
            total += bytes;
        }
        crate::memory::check(
            || format!("the {} weights of model `{}` together", module.weights.len(), module.name),
            total,
        )?;
        Ok(Self::init(module, num_relations, num_node_types, seed))
    }

    /// Initialises every weight of `module` deterministically from `seed` (see the module doc).
    /// Sizes are not checked (an allocation too large aborts): use [`WeightStore::try_init`]
    /// for sizes a user chose.
    pub fn init(module: &Module, num_relations: usize, num_node_types: usize, seed: u64) -> Self {
        let entries = module
            .weights
            .values()
            .map(|w| {
                let rows = slices(w.kind, num_relations, num_node_types);
                let tensor = match w.init {
                    Init::Zeros => Tensor::zeros(rows, w.shape.clone()),
                    Init::Ones => Tensor::full(rows, w.shape.clone(), 1.0),
                    Init::Glorot => {
                        let limit = glorot_limit(&w.shape);
                        let mut rng = Rng::for_stream(seed, &w.name);
                        let n = rows * w.shape.numel();
                        let data = (0..n).map(|_| rng.uniform(-limit, limit)).collect();
                        Tensor { rows, shape: w.shape.clone(), data }
                    }
                };
                WeightEntry { name: w.name.clone(), kind: w.kind, tensor }
            })
            .collect();
        Self { entries }
    }

    /// The values of weight `id`.
    pub fn get(&self, id: WeightId) -> Option<&Tensor> {
        self.entries.get(id.index()).map(|e| &e.tensor)
    }

    /// Mutable values of weight `id` (for optimisers).
    pub fn get_mut(&mut self, id: WeightId) -> Option<&mut Tensor> {
        self.entries.get_mut(id.index()).map(|e| &mut e.tensor)
    }

    /// The values of the weight named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|e| e.name == name).map(|e| &e.tensor)
    }

    /// Ids and entries in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (WeightId, &WeightEntry)> + '_ {
        self.entries.iter().enumerate().map(|(i, e)| (WeightId::new(i), e))
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the module declares no weight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.entries.iter().map(|e| e.tensor.data.len()).sum()
    }

    /// Loads the weights of `module` from a safetensors file (see the module doc for names,
    /// shapes and dtypes); every mismatch is reported in one [`RuntimeError::Weights`].
    pub fn load(
        path: &Path,
        module: &Module,
        num_relations: usize,
        num_node_types: usize,
    ) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| RuntimeError::Weights(format!("cannot read {}: {e}", path.display())))?;
        Self::from_safetensors(
            &bytes,
            &path.display().to_string(),
            module,
            num_relations,
            num_node_types,
        )
    }

    /// Like [`WeightStore::load`], from the bytes of a file; `origin` names it in messages.
    pub fn from_safetensors(
        bytes: &[u8],
        origin: &str,
        module: &Module,
        num_relations: usize,
        num_node_types: usize,
    ) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            RuntimeError::Weights(format!("{origin}: not a valid safetensors file: {e}"))
        })?;
        let mut problems = Vec::new();
        let mut entries = Vec::with_capacity(module.weights.len());
        for w in module.weights.values() {
            let rows = slices(w.kind, num_relations, num_node_types);
            let want = file_shape(w.kind, &w.shape, rows);
            let view = match st.tensor(&w.name) {
                Ok(v) => v,
                Err(_) => {
                    problems.push(format!("missing tensor `{}` (expected shape {want:?})", w.name));
                    continue;
                }
            };
            if view.shape() != want.as_slice() {
                problems.push(format!(
                    "tensor `{}` has shape {:?}, expected {want:?}",
                    w.name,
                    view.shape()
                ));
                continue;
            }
            let data = match decode(view.dtype(), view.data()) {
                Some(d) => d,
                None => {
                    problems.push(format!(
                        "tensor `{}` has dtype {:?}, expected F32 or F64",
                        w.name,
                        view.dtype()
                    ));
                    continue;
                }
            };
            entries.push(WeightEntry {
                name: w.name.clone(),
                kind: w.kind,
                tensor: Tensor { rows, shape: w.shape.clone(), data },
            });
        }
        let declared: BTreeSet<&str> = module.weights.values().map(|w| w.name.as_str()).collect();
        let mut extra: Vec<&str> =
            st.names().into_iter().filter(|n| !declared.contains(n)).collect();
        extra.sort_unstable();
        for name in extra {
            problems
                .push(format!("unexpected tensor `{name}` (the model declares no such weight)"));
        }
        if !problems.is_empty() {
            return Err(RuntimeError::Weights(format!("{origin}: {}", problems.join("; "))));
        }
        Ok(Self { entries })
    }

    /// The weights as the bytes of a safetensors file, in F32.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let buffers: Vec<Vec<u8>> = self
            .entries
            .iter()
            .map(|e| e.tensor.to_f32().iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let mut views = Vec::with_capacity(self.entries.len());
        for (e, buf) in self.entries.iter().zip(&buffers) {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, e.file_shape(), buf)
                .map_err(|err| RuntimeError::Internal(format!("weight `{}`: {err}", e.name)))?;
            views.push((e.name.clone(), view));
        }
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(views, Some(meta))
            .map_err(|err| RuntimeError::Weights(format!("cannot serialise weights: {err}")))
    }

    /// Writes the weights of `module` to a safetensors file (F32), atomically; an error when
    /// this store was not made for `module` (other weight names or slice shapes).
    pub fn save(&self, path: &Path, module: &Module) -> Result<()> {
        let same =
            module.weights.len() == self.entries.len()
                && module.weights.values().zip(&self.entries).all(|(w, e)| {
                    w.name == e.name && w.kind == e.kind && w.shape == e.tensor.shape
                });
        if !same {
            return Err(RuntimeError::Internal(format!(
                "saving weights of a store not made for model `{}`",
                module.name
            )));
        }
        write_atomic(path, &self.to_safetensors()?)
    }

    /// Every weight's values, in declaration order (for optimisers).
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        self.entries.iter_mut().map(|e| &mut e.tensor).collect()
    }

    /// The values of weight `id`. Panics when `id` is not a weight of the module this store
    /// was made for (like indexing the module's weight arena with a foreign id).
    pub fn tensor(&self, id: WeightId) -> &Tensor {
        &self.entries[id.index()].tensor
    }

    /// Adds uniform noise in `[-scale, scale)` to every value, each weight from its own stream
    /// `Rng::for_stream(seed, "perturb:" + name)` (tests use it so that zero biases and unit
    /// scales cannot hide mistakes).
    pub fn perturb(&mut self, scale: f64, seed: u64) {
        for e in &mut self.entries {
            let mut rng = Rng::for_stream(seed, &format!("perturb:{}", e.name));
            for x in &mut e.tensor.data {
                *x += rng.uniform(-scale, scale);
            }
        }
    }
}

/// Writes named tensors (a run's outputs) to a safetensors file, atomically, in F64 (the
/// reference interpreter's precision), each of shape `[rows, ..shape]`.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    write_atomic(path, &tensors_to_safetensors(tensors)?)
}

/// The bytes of a safetensors file holding `tensors` in F64, each `[rows, ..shape]`.
pub fn tensors_to_safetensors(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, t), buf) in tensors.iter().zip(&buffers) {
        let mut shape = vec![t.rows];
        shape.extend_from_slice(t.shape.dims());
        let view = safetensors::tensor::TensorView::new(Dtype::F64, shape, buf)
            .map_err(|err| RuntimeError::Internal(format!("tensor `{name}`: {err}")))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize(views, None)
        .map_err(|err| RuntimeError::Internal(format!("cannot serialise tensors: {err}")))
}

/// Reads a file written by [`save_tensors`] (or any safetensors file of F32/F64 tensors of
/// rank at least 1): each tensor as `[rows, ..shape]`, in name order.
pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let origin = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| RuntimeError::Weights(format!("cannot read {origin}: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        RuntimeError::Weights(format!("{origin}: not a valid safetensors file: {e}"))
    })?;
    let mut names = st.names();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = st
            .tensor(name)
            .map_err(|e| RuntimeError::Weights(format!("{origin}: tensor `{name}`: {e}")))?;
        let Some((&rows, shape)) = view.shape().split_first() else {
            return Err(RuntimeError::Weights(format!("{origin}: tensor `{name}` is a scalar")));
        };
        let data = decode(view.dtype(), view.data()).ok_or_else(|| {
            RuntimeError::Weights(format!("{origin}: tensor `{name}` is not F32 or F64"))
        })?;
        out.push((name.to_string(), Tensor::from_vec(rows, Shape(shape.to_vec()), data)?));
    }
    Ok(out)
}

/// Little-endian F32 or F64 values as f64; `None` for other dtypes.
fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        Dtype::F64 => Some(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_ir::builder::ModuleBuilder;

    /// `W[relation]: [4, 2, 3]`, `A[ntype]: [2]`, `root: [3]`, `bias: [3] = zeros`,
    /// `one: [] = ones`, plus `extra` weights declared first.
    fn module(extra: &[&str]) -> Module {
        let mut b = ModuleBuilder::new("m");
        let ok = |r: std::result::Result<pigeon_ir::ValueId, pigeon_ir::IrError>| {
            r.unwrap_or_else(|e| panic!("{e}"))
        };
        for name in extra {
            let v = ok(b.weight(name, WeightKind::Shared, &[2, 2], Init::Glorot));
            b.output(name, v);
        }
        for (name, kind, shape, init) in [
            ("W", WeightKind::PerRelation, &[4, 2, 3][..], Init::Glorot),
            ("A", WeightKind::PerNodeType, &[2][..], Init::Glorot),
            ("root", WeightKind::Shared, &[3][..], Init::Glorot),
            ("bias", WeightKind::Shared, &[3][..], Init::Zeros),
            ("one", WeightKind::Shared, &[][..], Init::Ones),
        ] {
            let v = ok(b.weight(name, kind, shape, init));
            b.output(name, v);
        }
        b.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pigeon-weights-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join(name)
    }

    fn load_bytes(bytes: &[u8], r: usize) -> Result<WeightStore> {
        WeightStore::from_safetensors(bytes, "test.safetensors", &module(&[]), r, 2)
    }

    #[test]
    fn init_is_deterministic_and_per_weight() {
        let m = module(&[]);
        let a = WeightStore::init(&m, 3, 2, 1);
        assert_eq!(a, WeightStore::init(&m, 3, 2, 1));
        assert_ne!(a.by_name("W"), WeightStore::init(&m, 3, 2, 2).by_name("W"));
        // Declaring another weight first changes neither the values nor the other streams.
        let b = WeightStore::init(&module(&["first"]), 3, 2, 1);
        assert_eq!(a.by_name("W"), b.by_name("W"));
        assert_eq!(a.by_name("root"), b.by_name("root"));
        let w = a.by_name("W").unwrap_or_else(|| panic!("no W"));
        assert_eq!((w.rows, w.data.len()), (3, 3 * 4 * 2 * 3));
        assert_eq!(a.by_name("A").map(|t| t.rows), Some(2));
        assert_eq!(a.by_name("bias").map(|t| t.data.clone()), Some(vec![0.0; 3]));
        assert_eq!(a.by_name("one").map(|t| t.data.clone()), Some(vec![1.0]));
        assert_eq!(a.num_params(), 72 + 4 + 3 + 3 + 1);
    }

    #[test]
    fn glorot_fans_and_bounds() {
        assert_eq!(glorot_fans(&Shape(vec![4, 2, 3])), (4, 2 * 3));
        assert_eq!(glorot_fans(&Shape(vec![5])), (5, 1));
        assert_eq!(glorot_fans(&Shape(vec![])), (1, 1));
        let s = WeightStore::init(&module(&[]), 3, 2, 9);
        // W: sqrt(6 / (4 + 6)); A: sqrt(6 / (2 + 1)); root: sqrt(6 / (3 + 1)).
        for (name, limit) in
            [("W", (6.0f64 / 10.0).sqrt()), ("A", 2f64.sqrt()), ("root", (6.0f64 / 4.0).sqrt())]
        {
            let t = s.by_name(name).unwrap_or_else(|| panic!("no {name}"));
            let max = t.data.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(max < limit, "{name}: {max} >= {limit}");
            if t.data.len() > 50 {
                // 72 uniform draws all below 0.8 * limit would have probability 0.8^72 ~ 1e-7.
                assert!(max > 0.8 * limit, "{name}: {max} is suspiciously small");
                assert!(t.data.iter().any(|&x| x < 0.0) && t.data.iter().any(|&x| x > 0.0));
            }
        }
    }

    #[test]
    fn safetensors_round_trip() {
        let m = module(&[]);
        let s = WeightStore::init(&m, 3, 2, 5);
        let path = tmp("round.safetensors");
        s.save(&path, &m).unwrap_or_else(|e| panic!("{e}"));
        // A store made for another module is not saved under this one's name.
        assert!(matches!(s.save(&path, &module(&["x"])), Err(RuntimeError::Internal(_))));
        let back = WeightStore::load(&path, &m, 3, 2).unwrap_or_else(|e| panic!("{e}"));
        for ((_, a), (_, b)) in s.iter().zip(back.iter()) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.tensor.to_f32(), b.tensor.to_f32());
            assert_eq!((a.tensor.rows, &a.tensor.shape), (b.tensor.rows, &b.tensor.shape));
        }
        // File shapes: [R, ..slice], [T, ..slice], [..slice].
        let bytes = std::fs::read(&path).unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let shape = |n: &str| st.tensor(n).map(|t| t.shape().to_vec()).unwrap_or_default();
        assert_eq!(shape("W"), vec![3, 4, 2, 3]);
        assert_eq!(shape("A"), vec![2, 2]);
        assert_eq!(shape("bias"), vec![3]);
        assert_eq!(st.tensor("one").map(|t| t.shape().is_empty()).ok(), Some(true));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn perturb_moves_every_value_within_scale() {
        let m = module(&[]);
        let base = WeightStore::init(&m, 3, 2, 1);
        let mut p = base.clone();
        p.perturb(0.3, 5);
        for ((_, a), (_, b)) in base.iter().zip(p.iter()) {
            for (x, y) in a.tensor.data.iter().zip(&b.tensor.data) {
                let d = (y - x).abs();
                assert!(d > 0.0 && d < 0.3, "{}: {x} -> {y}", a.name);
            }
        }
    }

    #[test]
    fn output_tensors_are_saved_in_f64() {
        let t = Tensor { rows: 2, shape: Shape(vec![3]), data: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6] };
        let bytes = tensors_to_safetensors(&[("out".into(), t)]).unwrap_or_else(|e| panic!("{e}"));
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let view = st.tensor("out").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((view.dtype(), view.shape()), (Dtype::F64, &[2usize, 3][..]));
        assert_eq!(decode(view.dtype(), view.data()), Some(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]));
    }

    /// A safetensors file holding `tensors` (name, dtype, shape, little-endian bytes).
    fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                let v = safetensors::tensor::TensorView::new(*d, s.clone(), b)
                    .unwrap_or_else(|e| panic!("{e}"));
                (n.to_string(), v)
            })
            .collect();
        safetensors::serialize(views, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn f32s(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    /// The tensors of a valid file for `module(&[])` with R = 3, T = 2, all F32.
    fn valid() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        vec![
            ("W", Dtype::F32, vec![3, 4, 2, 3], f32s(72)),
            ("A", Dtype::F32, vec![2, 2], f32s(4)),
            ("root", Dtype::F32, vec![3], f32s(3)),
            ("bias", Dtype::F32, vec![3], f32s(3)),
            ("one", Dtype::F32, vec![], f32s(1)),
        ]
    }

    fn weights_error(r: Result<WeightStore>) -> String {
        match r {
            Err(RuntimeError::Weights(m)) => m,
            other => panic!("expected a weights error, got {other:?}"),
        }
    }

    #[test]
    fn f64_tensors_are_accepted_exactly() {
        let mut t = valid();
        t[2] = (
            "root",
            Dtype::F64,
            vec![3],
            [0.1f64, 0.2, 0.3].iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
        let s = load_bytes(&file(&t), 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.by_name("root").map(|t| t.data.clone()), Some(vec![0.1, 0.2, 0.3]));
        assert_eq!(s.by_name("W").map(|t| t.row(1)[0]), Some(24.0));
    }

    #[test]
    fn load_errors_name_the_tensor_and_the_numbers() {
        let mut t = valid();
        t.remove(3);
        let m = weights_error(load_bytes(&file(&t), 3));
        assert!(m.contains("missing tensor `bias`") && m.contains("[3]"), "{m}");

        let mut t = valid();
        t.push(("l9.W", Dtype::F32, vec![1], f32s(1)));
        let m = weights_error(load_bytes(&file(&t), 3));
        assert!(m.contains("unexpected tensor `l9.W`"), "{m}");

        // Saved for 3 relations, loaded for a graph with 2.
        let m = weights_error(load_bytes(&file(&valid()), 2));
        assert!(m.contains("`W` has shape [3, 4, 2, 3], expected [2, 4, 2, 3]"), "{m}");

        let mut t = valid();
        t[1] = ("A", Dtype::I32, vec![2, 2], f32s(4));
        let m = weights_error(load_bytes(&file(&t), 3));
        assert!(m.contains("`A` has dtype I32"), "{m}");

        let m = weights_error(load_bytes(b"not a safetensors file", 3));
        assert!(m.contains("test.safetensors") && m.contains("not a valid safetensors"), "{m}");

        let missing = tmp("does-not-exist.safetensors");
        let m = weights_error(WeightStore::load(&missing, &module(&[]), 3, 2));
        assert!(m.contains("cannot read") && m.contains("does-not-exist"), "{m}");
    }
}
