//! Graph specs: the one-string description of a graph that the CLI and benches take
//! (`--graph rdf:../shared/datasets/aifb,inverse,self-loops`), and [`load_graph`].
//!
//! Syntax: `KIND:PATH[,OPTION...]` for files, where KIND is one of
//! - `rdf` (N-Triples + R-GCN label TSVs, [`crate::loaders::rdf`]),
//! - `triples` (knowledge-graph `train/valid/test.txt`, [`crate::loaders::triples`]),
//! - `heco` (HeCo's ACM release, [`crate::loaders::heco`]),
//! - `hgb` (HGB's IMDB release, [`crate::loaders::hgb`]);
//!
//! and `synthetic:KEY=VALUE,...[,OPTION...]` ([`crate::loaders::synthetic`]) with keys `nodes`,
//! `edges` (both required unless a preset is named), `relations` (default 1), `ntypes`
//! (default 1), `seed` (default 0), and `like=bgs|am|biokg|mag|wikikg2` for a preset with the
//! published shape of a graph too large to ship (its relation count already includes the
//! inverses the benchmark adds; keys given beside it override the preset). Paths cannot contain
//! commas.
//!
//! Options: `inverse` adds a relation `rev:<name>` for each of the `R` relations (ids `R..2R`,
//! the R-GCN convention); `self-loops` then adds one relation `self` (the last id) with an edge
//! `i -> i` for every node.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Result, RuntimeError};
use crate::graph::HeteroGraph;
use crate::loaders::{self, SyntheticParams};

/// Where a graph comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphSource {
    /// An RDF directory (`rdf:`).
    Rdf(PathBuf),
    /// A knowledge-graph triples directory (`triples:`).
    Triples(PathBuf),
    /// A HeCo release directory (`heco:`).
    Heco(PathBuf),
    /// An HGB release directory (`hgb:`).
    Hgb(PathBuf),
    /// A generated graph (`synthetic:`).
    Synthetic(SyntheticParams),
}

/// A parsed graph spec.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSpec {
    /// Where the graph comes from.
    pub source: GraphSource,
    /// Add inverse relations.
    pub inverse: bool,
    /// Add a self-loop relation.
    pub self_loops: bool,
}

/// The accepted kinds, for error messages.
const KINDS: &str = "rdf, triples, heco, hgb, synthetic";
/// The accepted options, for error messages.
const OPTIONS: &str = "inverse, self-loops";
/// The accepted synthetic keys, for error messages.
const SYNTHETIC_KEYS: &str = "nodes, edges, relations, ntypes, seed, like";

/// The presets of `synthetic:like=NAME`: (name, nodes, edges, relations, node types). Shapes as
/// published (datasets README): BGS and AM from R-GCN, the others from OGB; `about` counts
/// (biokg, wikikg2) are the OGB training-edge counts.
pub const PRESETS: [(&str, usize, usize, usize, usize); 5] = [
    ("bgs", 94_806, 672_884, 122, 1),
    ("am", 881_680, 5_668_682, 108, 1),
    ("biokg", 93_773, 4_762_678, 51, 5),
    ("mag", 1_939_743, 21_111_007, 4, 4),
    ("wikikg2", 2_500_604, 16_109_182, 535, 1),
];

impl GraphSpec {
    /// Parses a spec (see the module doc).
    pub fn parse(spec: &str) -> Result<GraphSpec> {
        let fail = |m: String| RuntimeError::Spec { spec: spec.to_owned(), message: m };
        let text = spec.trim();
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            fail(format!("expected KIND:PATH or synthetic:KEY=VALUE,... with KIND one of {KINDS}"))
        })?;
        let mut items = rest.split(',').map(str::trim);
        let mut parsed = GraphSpec {
            source: GraphSource::Synthetic(SyntheticParams {
                nodes: 0,
                edges: 0,
                relations: 1,
                ntypes: 1,
                seed: 0,
            }),
            inverse: false,
            self_loops: false,
        };
        let mut keys: Vec<(&str, &str)> = Vec::new();
        let path = |items: &mut dyn Iterator<Item = &str>| -> Result<PathBuf> {
            match items.next() {
                Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
                _ => Err(fail(format!("`{kind}:` needs a path"))),
            }
        };
        parsed.source = match kind.trim() {
            "rdf" => GraphSource::Rdf(path(&mut items)?),
            "triples" => GraphSource::Triples(path(&mut items)?),
            "heco" => GraphSource::Heco(path(&mut items)?),
            "hgb" => GraphSource::Hgb(path(&mut items)?),
            "synthetic" => GraphSource::Synthetic(SyntheticParams {
                nodes: 0,
                edges: 0,
                relations: 1,
                ntypes: 1,
                seed: 0,
            }),
            k => return Err(fail(format!("unknown graph kind `{k}`; expected one of {KINDS}"))),
        };
        let synthetic = matches!(parsed.source, GraphSource::Synthetic(_));
        for item in items {
            match (item, item.split_once('=')) {
                ("inverse", _) => parsed.inverse = true,
                ("self-loops", _) => parsed.self_loops = true,
                (_, Some((k, v))) if synthetic => {
                    if keys.iter().any(|&(seen, _)| seen == k.trim()) {
                        return Err(fail(format!("`{}` is given twice", k.trim())));
                    }
                    keys.push((k.trim(), v.trim()));
                }
                _ if synthetic => {
                    return Err(fail(format!("unknown item `{item}`; expected KEY=VALUE with KEY one of {SYNTHETIC_KEYS}, or an option ({OPTIONS})")))
                }
                _ => return Err(fail(format!("unknown option `{item}`; expected one of {OPTIONS}"))),
            }
        }
        if synthetic {
            parsed.source = GraphSource::Synthetic(synthetic_params(&keys).map_err(fail)?);
        }
        Ok(parsed)
    }

    /// Loads (or generates) the graph, applies the options and validates the result. The
    /// graph's `name` is the spec's text form.
    pub fn load(&self) -> Result<HeteroGraph> {
        let mut g = match &self.source {
            GraphSource::Rdf(p) => loaders::load_rdf(p)?,
            GraphSource::Triples(p) => loaders::load_triples(p)?,
            GraphSource::Heco(p) => loaders::load_heco(p)?,
            GraphSource::Hgb(p) => loaders::load_hgb(p)?,
            GraphSource::Synthetic(p) => loaders::generate(p)?,
        };
        if self.inverse {
            g = g.with_inverse();
        }
        if self.self_loops {
            g = g.with_self_loops();
        }
        g.name = self.to_string();
        g.validate()?;
        Ok(g)
    }
}

/// Synthetic parameters from `key=value` items.
fn synthetic_params(keys: &[(&str, &str)]) -> std::result::Result<SyntheticParams, String> {
    let mut p = SyntheticParams { nodes: 0, edges: 0, relations: 1, ntypes: 1, seed: 0 };
    let mut has = (false, false);
    if let Some(&(_, name)) = keys.iter().find(|(k, _)| *k == "like") {
        let &(_, nodes, edges, relations, ntypes) =
            PRESETS.iter().find(|x| x.0 == name).ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|x| x.0).collect();
                format!("unknown preset `{name}`; expected one of {}", names.join(", "))
            })?;
        p = SyntheticParams { nodes, edges, relations, ntypes, seed: 0 };
        has = (true, true);
    }
    for &(k, v) in keys {
        if k == "like" {
            continue;
        }
        let value: u64 = v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("`{k}={v}`: expected a non-negative integer"))?;
        let size = || usize::try_from(value).map_err(|_| format!("`{k}={v}` is too large"));
        match k {
            "nodes" => (p.nodes, has.0) = (size()?, true),
            "edges" => (p.edges, has.1) = (size()?, true),
            "relations" => p.relations = size()?,
            "ntypes" => p.ntypes = size()?,
            "seed" => p.seed = value,
            _ => return Err(format!("unknown key `{k}`; expected one of {SYNTHETIC_KEYS}")),
        }
    }
    match has {
        (true, true) => Ok(p),
        _ => Err("`synthetic:` needs `nodes=N,edges=E` or `like=PRESET`".into()),
    }
}

impl fmt::Display for GraphSpec {
    /// The canonical text form, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            GraphSource::Rdf(p) => write!(f, "rdf:{}", p.display())?,
            GraphSource::Triples(p) => write!(f, "triples:{}", p.display())?,
            GraphSource::Heco(p) => write!(f, "heco:{}", p.display())?,
            GraphSource::Hgb(p) => write!(f, "hgb:{}", p.display())?,
            GraphSource::Synthetic(p) => write!(f, "{p}")?,
        }
        if self.inverse {
            write!(f, ",inverse")?;
        }
        if self.self_loops {
            write!(f, ",self-loops")?;
        }
        Ok(())
    }
}

/// Parses `spec`, loads the graph, applies the options and validates it.
pub fn load_graph(spec: &str) -> Result<HeteroGraph> {
    GraphSpec::parse(spec)?.load()
}
