//! Loader tests: the real datasets in `../shared/datasets` load with their published counts,
//! small fixtures load to hand-checked graphs, malformed files give errors naming the file and
//! line, specs parse and reject what they should, and synthetic graphs are exact,
//! deterministic and skewed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pigeon_runtime::graph::HeteroGraph;
use pigeon_runtime::loaders::{load_heco, load_hgb, load_rdf, load_triples};
use pigeon_runtime::spec::{load_graph, GraphSource, GraphSpec};
use pigeon_runtime::RuntimeError;

/// The shared datasets folder (`PIGEON_DATASETS` overrides), or `None` after saying why.
fn datasets() -> Option<PathBuf> {
    let dir = std::env::var_os("PIGEON_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: ../shared/datasets not found at {}", dir.display());
        None
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn load(spec: &str) -> HeteroGraph {
    load_graph(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// (nodes, edges, relations) of a graph.
fn shape(g: &HeteroGraph) -> (usize, usize, usize) {
    (g.num_nodes(), g.num_edges(), g.num_relations())
}

/// (classes, train, valid, test) of a graph's labels.
fn label_counts(g: &HeteroGraph) -> (usize, usize, usize, usize) {
    let l = g.labels.as_ref().expect("labels");
    (l.class_names.len(), l.train.len(), l.valid.len(), l.test.len())
}

/// Asserts that `err` is a parse error in `file` at `line` whose message contains `needle`.
fn check_parse_error(err: RuntimeError, file: &str, line: usize, needle: &str) {
    let text = err.to_string();
    match &err {
        RuntimeError::Parse { path, line: l, message } => {
            assert!(path.ends_with(file), "{text}: wrong file, expected {file}");
            assert_eq!(*l, line, "{text}");
            assert!(message.contains(needle), "{text}: lacks `{needle}`");
            assert!(text.contains(&format!("{file}:{line}:")), "{text}");
        }
        other => panic!("expected a parse error in {file}:{line}, got {other:?}"),
    }
}

// ---- real datasets -------------------------------------------------------------------------

#[test]
fn aifb_counts() {
    let Some(d) = datasets() else { return };
    let g = load(&format!("rdf:{}", d.join("aifb").display()));
    eprintln!("{g}");
    assert_eq!(shape(&g), (8_285, 29_043, 45));
    assert_eq!(label_counts(&g), (4, 140, 0, 36));
    assert_eq!(g.base_relations, 45);
    let names = g.node_names.as_ref().expect("names");
    assert_eq!(names.iter().filter(|n| n.starts_with('"')).count(), 5_450);
    assert_eq!(names.iter().filter(|n| n.starts_with("_:")).count(), 152);
    // Every labelled node is a person.
    let labels = g.labels.as_ref().expect("labels");
    for &(n, _) in &labels.assignments {
        assert!(names[n as usize].contains("/Personen/"), "{}", names[n as usize]);
    }
    let h = load(&format!("rdf:{},inverse,self-loops", d.join("aifb").display()));
    assert_eq!(shape(&h), (8_285, 2 * 29_043 + 8_285, 91));
    assert_eq!(h.base_relations, 45);
    assert_eq!(h.relations[45].name, format!("rev:{}", h.relations[0].name));
    assert_eq!(h.relations[90].name, "self");
    // The inverse of edge 0 is edge 29,043; self-loops come last.
    assert_eq!((h.src[29_043], h.dst[29_043], h.rel[29_043]), (h.dst[0], h.src[0], h.rel[0] + 45));
    assert_eq!((h.src[58_086], h.dst[58_086], h.rel[58_086]), (0, 0, 90));
}

#[test]
fn mutag_counts() {
    let Some(d) = datasets() else { return };
    let g = load(&format!("rdf:{}", d.join("mutag").display()));
    assert_eq!(shape(&g), (23_644, 74_227, 23));
    assert_eq!(label_counts(&g), (2, 272, 0, 68));
    assert_eq!(
        g.labels.as_ref().map(|l| l.class_names.clone()),
        Some(vec!["0.0".into(), "1.0".into()])
    );
}

#[test]
fn fb15k_237_counts() {
    let Some(d) = datasets() else { return };
    let start = Instant::now();
    let g = load_triples(&d.join("fb15k-237")).expect("fb15k-237");
    let took = start.elapsed();
    eprintln!("fb15k-237 loaded in {took:?}");
    assert_eq!(shape(&g), (14_541, 272_115, 237));
    let s = g.link_splits.as_ref().expect("splits");
    assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (272_115, 17_535, 20_466));
    let names = g.node_names.as_ref().expect("names");
    // First line of train.txt: /m/027rn /location/country/form_of_government /m/06cx9.
    assert_eq!((names[0].as_str(), names[1].as_str()), ("/m/027rn", "/m/06cx9"));
    assert_eq!(g.relations[0].name, "/location/country/form_of_government");
    assert_eq!((g.src[0], g.rel[0], g.dst[0]), (0, 0, 1));
}

#[test]
fn wn18rr_and_tiny_counts() {
    let Some(d) = datasets() else { return };
    for (dir, nodes, rels, train, valid, test) in [
        ("wn18rr", 40_943, 11, 86_835, 3_034, 3_134),
        ("tiny/nations", 14, 55, 1_592, 199, 201),
        ("tiny/umls", 135, 46, 5_216, 652, 661),
        ("tiny/kinship", 104, 25, 8_544, 1_068, 1_074),
    ] {
        let g = load(&format!("triples:{}", d.join(dir).display()));
        assert_eq!(shape(&g), (nodes, train, rels), "{dir}");
        let s = g.link_splits.as_ref().expect("splits");
        assert_eq!((s.valid.len(), s.test.len()), (valid, test), "{dir}");
    }
}

#[test]
fn acm_counts_and_features() {
    let Some(d) = datasets() else { return };
    let g = load(&format!("heco:{}", d.join("acm").display()));
    eprintln!("{g}");
    assert_eq!(g.node_types, ["paper", "author", "subject"]);
    assert_eq!(g.type_offsets, [0, 4_019, 4_019 + 7_167, 4_019 + 7_167 + 60]);
    assert_eq!(shape(&g), (11_246, 2 * 13_407 + 2 * 4_019, 4));
    assert_eq!(g.relation_sizes(), [13_407, 13_407, 4_019, 4_019]);
    assert_eq!(label_counts(&g), (3, 60, 1_000, 1_000));
    let l = g.labels.as_ref().expect("labels");
    assert_eq!(l.assignments.len(), 4_019);
    let f = g.feature("feat").expect("feat");
    assert_eq!(f.dim, 1_902);
    // Values computed with Python's zipfile/struct from the .npz files: paper rows are
    // normalised (each sums to 1), 340,377 + 888,869 stored entries, none zero.
    assert_eq!(f.data.iter().filter(|&&x| x != 0.0).count(), 340_377 + 888_869);
    let row = |n: usize| &f.data[n * 1_902..(n + 1) * 1_902];
    for p in [0, 1, 4_018] {
        assert!((row(p).iter().sum::<f32>() - 1.0).abs() < 1e-4, "paper {p}");
    }
    assert!((row(0)[0] - 0.008_196_721).abs() < 1e-7);
    assert!((row(4_019)[1] - 0.022_004_022).abs() < 1e-7, "author 0, column 1");
    assert!((11_186..11_246).all(|n| row(n).iter().all(|&x| x == 0.0)), "subject rows are zero");
    let total: f64 = f.data.iter().map(|&x| f64::from(x)).sum();
    assert!((total - (4_019.0 + 13_407.0)).abs() < 0.05, "{total}");
}

#[test]
fn imdb_counts() {
    let Some(d) = datasets() else { return };
    let g = load(&format!("hgb:{}", d.join("imdb").display()));
    eprintln!("{g}");
    assert_eq!(shape(&g), (21_420, 86_642, 6));
    assert_eq!(g.node_types, ["movie", "director", "actor", "keyword"]);
    assert_eq!(g.type_offsets, [0, 4_932, 7_325, 13_449, 21_420]);
    assert_eq!(g.relation_sizes(), [4_932, 4_932, 14_779, 14_779, 23_610, 23_610]);
    assert_eq!(g.relations[0].name, "movie->director");
    assert_eq!((g.relations[3].src_type, g.relations[3].dst_type), (Some(2), Some(0)));
    let l = g.labels.as_ref().expect("labels");
    assert!(l.multi_label);
    assert_eq!(l.class_names, ["Romance", "Thriller", "Comedy", "Action", "Drama"]);
    assert_eq!(label_counts(&g), (5, 1_371, 0, 3_202));
    assert_eq!(l.assignments.len(), 7_963);
    let w = &g.edge_features[0];
    assert_eq!((w.name.as_str(), w.dim, w.data.len()), ("edge_weight", 1, 86_642));
    let h = load(&format!("hgb:{},inverse,self-loops", d.join("imdb").display()));
    assert_eq!(h.edge_features[0].data.len(), h.num_edges());
}

// ---- small fixtures ------------------------------------------------------------------------

#[test]
fn triples_fixture() {
    let g = load_triples(&data("triples_small")).expect("load");
    assert_eq!(g.node_names.as_deref(), Some(&["a", "b", "c", "d", "e"].map(String::from)[..]));
    let rels: Vec<&str> = g.relations.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rels, ["likes", "knows", "hates"]);
    assert_eq!(
        (g.src.clone(), g.rel.clone(), g.dst.clone()),
        (vec![0, 1, 0], vec![0, 1, 1], vec![1, 2, 2])
    );
    let s = g.link_splits.as_ref().expect("splits");
    assert_eq!((s.valid.clone(), s.test.clone()), (vec![(2, 0, 3)], vec![(4, 2, 0)]));
    g.validate().expect("valid");
}

#[test]
fn rdf_fixture() {
    let g = load_rdf(&data("rdf_small")).expect("load");
    let names = g.node_names.clone().expect("names");
    let expect = [
        "http://ex.org/alice",
        "http://ex.org/bob",
        "_:b0",
        "\"Alice\"@en",
        "\"Bob\"",
        "\"42\"^^<http://www.w3.org/2001/XMLSchema#int>",
    ];
    assert_eq!(names, expect.map(String::from));
    assert_eq!(shape(&g), (6, 6, 3));
    // `"B\u006fb"^^xsd:string` is the literal "Bob": bob and _:b0 share the name node 4.
    assert_eq!((g.src[3], g.dst[3], g.src[5], g.dst[5]), (1, 4, 2, 4));
    let l = g.labels.as_ref().expect("labels");
    assert_eq!(l.class_names, ["coder", "teacher"]);
    assert_eq!(l.assignments, [(1, 1), (0, 0)]);
    assert_eq!((l.train.clone(), l.test.clone()), (vec![1], vec![0]));
}

#[test]
fn hgb_fixture() {
    let g = load_hgb(&data("hgb_small")).expect("load");
    assert_eq!(g.type_offsets, [0, 2, 5], "the missing type count is derived from the total");
    assert_eq!(g.node_types, ["movie", "actor"]);
    assert_eq!(g.edge_features[0].data, [1.0, 1.0, 0.5, 0.5]);
    let l = g.labels.as_ref().expect("labels");
    assert_eq!(l.assignments, [(0, 2), (0, 0), (1, 1)]);
    assert_eq!(l.num_labelled(), 2);
    let h = g.with_inverse().with_self_loops();
    assert_eq!(
        h.edge_features[0].data,
        [1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(h.relations[2].name, "rev:movie->actor");
    assert_eq!((h.relations[2].src_type, h.relations[2].dst_type), (Some(1), Some(0)));
    assert_eq!(h.relations[4].src_type, None, "self spans several node types");
    h.validate().expect("valid");
}

#[test]
fn heco_fixture() {
    // p_feat: 3 x 4 CSR, deflated; a_feat: 2 x 3 COO, stored (written with Python's zipfile).
    let g = load_heco(&data("heco_small")).expect("load");
    assert_eq!(g.type_offsets, [0, 3, 5, 7]);
    let edges: Vec<(u32, u32, u32)> =
        (0..g.num_edges()).map(|e| (g.src[e], g.dst[e], g.rel[e])).collect();
    let expect = [(0, 3, 0), (1, 4, 0), (2, 3, 0), (3, 0, 1), (4, 1, 1), (3, 2, 1)];
    assert_eq!(edges[..6], expect);
    let expect = [(0, 5, 2), (1, 5, 2), (2, 6, 2), (5, 0, 3), (5, 1, 3), (6, 2, 3)];
    assert_eq!(edges[6..], expect);
    let f = g.feature("feat").expect("feat");
    assert_eq!(f.dim, 4);
    #[rustfmt::skip]
    let rows = [
        1.0, 0.0, 0.5, 0.0,
        0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 2.0,
        1.5, 0.0, 0.0, 0.0,
        0.0, 0.0, -1.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(f.data, rows);
    let l = g.labels.as_ref().expect("labels");
    assert_eq!(l.assignments, [(0, 0), (1, 1), (2, 0)]);
    assert_eq!((l.train.clone(), l.valid.clone(), l.test.clone()), (vec![0], vec![1], vec![2]));
    assert_eq!(l.class_names, ["0", "1"]);
    g.validate().expect("valid");
}

#[test]
fn malformed_files_name_file_and_line() {
    let err = |r: Result<HeteroGraph, RuntimeError>| r.expect_err("should fail");
    check_parse_error(
        err(load_triples(&data("triples_bad_columns"))),
        "train.txt",
        2,
        "expected 3 tab-separated columns",
    );
    check_parse_error(
        err(load_triples(&data("triples_empty_field"))),
        "train.txt",
        2,
        "empty head",
    );
    check_parse_error(err(load_hgb(&data("hgb_bad_type"))), "link.dat", 3, "unknown edge type 7");
    check_parse_error(err(load_hgb(&data("hgb_bad_id"))), "link.dat", 3, "node id 5 out of range");
    check_parse_error(err(load_hgb(&data("hgb_bad_number"))), "link.dat", 2, "bad weight `abc`");
    check_parse_error(err(load_hgb(&data("hgb_bad_label"))), "label.dat", 2, "bad class `x`");
    check_parse_error(err(load_heco(&data("heco_bad_id"))), "pa.txt", 3, "paper id 3 out of range");
    check_parse_error(err(load_rdf(&data("rdf_bad_line"))), "bad.nt", 3, "unterminated literal");
    check_parse_error(
        err(load_rdf(&data("rdf_unknown_entity"))),
        "trainingSet.tsv",
        3,
        "`http://ex.org/zzz` is not a node",
    );
    // The truncated gzip fails partway, at whatever line the stream ends: after line 1, and
    // before the last of its 3,000 lines.
    match load_rdf(&data("rdf_truncated")) {
        Err(RuntimeError::Parse { path, line, message }) => {
            assert!(path.ends_with("t_stripped.nt.gz"), "{}", path.display());
            assert!(line > 1 && line <= 3_000, "line {line}");
            assert!(message.contains("truncated or corrupt"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    let missing = load_triples(&data("no_such_dir")).expect_err("missing");
    assert!(matches!(missing, RuntimeError::Io { .. }), "{missing:?}");
}

// ---- specs ---------------------------------------------------------------------------------

#[test]
fn spec_parsing() {
    let s = GraphSpec::parse("rdf:data/aifb,inverse,self-loops").expect("parse");
    assert_eq!(s.source, GraphSource::Rdf("data/aifb".into()));
    assert!(s.inverse && s.self_loops);
    assert_eq!(s.to_string(), "rdf:data/aifb,inverse,self-loops");
    let s = GraphSpec::parse("synthetic:like=am,seed=3").expect("parse");
    assert_eq!(s.to_string(), "synthetic:nodes=881680,edges=5668682,relations=108,ntypes=1,seed=3");
    assert_eq!(GraphSpec::parse(&s.to_string()).expect("reparse"), s);
    let s = GraphSpec::parse("synthetic:nodes=10,edges=20").expect("parse");
    assert_eq!(s.to_string(), "synthetic:nodes=10,edges=20,relations=1,ntypes=1,seed=0");
    for (bad, needle) in [
        ("csv:x", "expected one of rdf, triples, heco, hgb, synthetic"),
        ("aifb", "expected KIND:PATH"),
        ("rdf:", "needs a path"),
        ("rdf:x,reverse", "unknown option `reverse`; expected one of inverse, self-loops"),
        (
            "synthetic:nodes=10,edges=5,colour=3",
            "unknown key `colour`; expected one of nodes, edges",
        ),
        ("synthetic:nodes=10", "needs `nodes=N,edges=E` or `like=PRESET`"),
        ("synthetic:nodes=ten,edges=5", "expected a non-negative integer"),
        (
            "synthetic:like=cora",
            "unknown preset `cora`; expected one of bgs, am, biokg, mag, wikikg2",
        ),
        ("synthetic:nodes=1,nodes=2,edges=1", "given twice"),
    ] {
        match GraphSpec::parse(bad) {
            Err(RuntimeError::Spec { message, .. }) => {
                assert!(message.contains(needle), "{bad}: {message}")
            }
            other => panic!("{bad}: expected a spec error, got {other:?}"),
        }
    }
    match load_graph("synthetic:nodes=2,edges=5,ntypes=3") {
        Err(RuntimeError::Spec { message, .. }) => {
            assert!(message.contains("at least ntypes"), "{message}")
        }
        other => panic!("expected a spec error, got {other:?}"),
    }
}

// ---- synthetic -----------------------------------------------------------------------------

#[test]
fn synthetic_counts_determinism_and_skew() {
    let spec = "synthetic:nodes=10000,edges=200000,relations=7,ntypes=3,seed=1";
    let g = load(spec);
    assert_eq!(shape(&g), (10_000, 200_000, 7));
    assert_eq!(g.type_offsets, [0, 3_334, 6_667, 10_000]);
    let sizes = g.relation_sizes();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]) && sizes[0] > 3 * sizes[6], "{sizes:?}");
    assert_eq!(g, load(spec), "same seed, same graph");
    let other = load("synthetic:nodes=10000,edges=200000,relations=7,ntypes=3,seed=2");
    assert_ne!(g.src, other.src);
    let deg = g.in_degrees();
    let max = *deg.iter().max().expect("nodes") as f64;
    let mean = 200_000.0 / 10_000.0;
    assert!(max > 20.0 * mean, "max in-degree {max}, mean {mean}");
    let g = load("synthetic:nodes=50,edges=300,relations=4,seed=9,inverse,self-loops");
    assert_eq!(shape(&g), (50, 650, 9));
    assert_eq!(g.base_relations, 4);
}

#[test]
fn synthetic_like_am_has_the_published_shape() {
    let start = Instant::now();
    let g = load("synthetic:like=am");
    let took = start.elapsed();
    eprintln!("synthetic:like=am generated and validated in {took:?}");
    assert_eq!(shape(&g), (881_680, 5_668_682, 108));
}

#[test]
fn display_summarises() {
    let g = load_hgb(&data("hgb_small")).expect("load");
    let text = g.to_string();
    for line in [
        "nodes       5",
        "edges       4",
        "relations   2",
        "  movie      2 (ids 0..2)",
        "edge feat.  edge_weight [1]",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(
        text.contains("labelled    2 (3 classes, multi-label; train 1, valid 0, test 1)"),
        "{text}"
    );
    let g = g.with_inverse();
    assert!(g.to_string().contains("relations   4 (2 base + 2 added)"), "{g}");
}
