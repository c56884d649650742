#!/usr/bin/env python3
"""pigeon vs PyTorch Geometric on the CPU: same graph, same weights, same inputs, same cores.

For each model (rgcn, rgat, hgt) and graph spec this script

1. has pigeon export the graph (`pigeon graph export`) and run its f64 reference interpreter
   (`pigeon run --backend reference`) with weights written here (random, every tensor non-trivial:
   biases, `p_rel` and `skip` too, so that a misplaced one cannot hide), saving the bound inputs
   and the output;
2. builds the matching PyG layer (RGCNConv and FastRGCNConv, RGATConv, HGTConv), loads the same
   weights into it, runs it on the same inputs and FAILS loudly unless its output matches pigeon's
   (max |pyg - pigeon| / max |pigeon| <= --tol);
3. times PyG's forward pass (warm-up, then the median of --runs, torch.set_num_threads(--threads),
   torch.no_grad()) and measures its peak memory, each configuration in a fresh subprocess
   (peak RSS: ru_maxrss after resetting the high-water mark through /proc/self/clear_refs just
   before the forward passes; "+fwd" is that peak minus the RSS right before them);
4. runs `pigeon bench` (the CPU back end) on the same model, graph, dims and threads
   (`--threads`, RAYON_NUM_THREADS) when the pigeon binary has that command, and prints both side
   by side with the ratio of median times.

One JSON line per configuration on stdout (prefixed `JSON `), then a table. Exit status 1 when a
check failed. Run `bash bench/setup.sh` first; see bench/README.md.
"""

import argparse
import json
import math
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("PIGEON_DATASETS", REPO.parent / "shared" / "datasets")).resolve()

GRAPH_ALIASES = {
    "aifb": f"rdf:{DATASETS}/aifb",
    "mutag": f"rdf:{DATASETS}/mutag",
    "acm": f"heco:{DATASETS}/acm",
    "fb15k-237": f"triples:{DATASETS}/fb15k-237,inverse",
    "bgs-like": "synthetic:like=bgs",
    # 9 nodes, 3 node types, 3 relations each joining several type pairs, a node type that
    # receives no edge, a multi-edge, a self-loop and an isolated node: checks the HGT mapping.
    "mixed": f"hgb:{REPO}/bench/fixtures/mixed",
}
DEFAULT_GRAPHS = ["aifb", "mutag", "acm", "fb15k-237", "bgs-like"]
VARIANTS = {"rgcn": ["RGCNConv", "FastRGCNConv"], "rgat": ["RGATConv"], "hgt": ["HGTConv"]}
MODEL_FILES = {m: REPO / "examples" / f"{m}.rgnn" for m in VARIANTS}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Weights: written here, loaded by pigeon (`--weights`) and by PyG.


def make_weights(model, R, T, in_dim, out_dim, heads, seed):
    """Random weights with pigeon's names and file shapes (`[R, ...]`, `[T, ...]`), float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    H, D = heads, out_dim // heads

    def glorot(shape, fan_in, fan_out):
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape).astype(np.float32)

    def unif(shape, lo, hi):
        return rng.uniform(lo, hi, size=shape).astype(np.float32)

    if model == "rgcn":
        return {
            "W": glorot((R, in_dim, out_dim), in_dim, out_dim),
            "root": glorot((in_dim, out_dim), in_dim, out_dim),
            "bias": unif((out_dim,), -0.5, 0.5),
        }
    if model == "rgat":
        return {
            "W": glorot((R, in_dim, out_dim), in_dim, out_dim),
            "q": glorot((out_dim, H), out_dim, H),
            "k": glorot((out_dim, H), out_dim, H),
            "bias": unif((out_dim,), -0.5, 0.5),
        }
    if model == "hgt":
        w = {}
        for n in "kqv":
            w[f"W{n}"] = glorot((T, in_dim, H, D), in_dim, out_dim)
            w[f"b{n}"] = unif((T, H, D), -0.5, 0.5)
        w["k_rel"] = glorot((R, H, D, D), D, D)
        w["v_rel"] = glorot((R, H, D, D), D, D)
        w["p_rel"] = unif((R, H), 0.5, 1.5)
        w["Wout"] = glorot((T, out_dim, out_dim), out_dim, out_dim)
        w["bout"] = unif((T, out_dim), -0.5, 0.5)
        w["skip"] = unif((T,), -1.0, 1.0)
        return w
    raise ValueError(f"unknown model {model}")


# ----------------------------------------------------------------------------------------------
# The worker: one PyG configuration in a fresh process.


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reset_hwm():
    """Resets the RSS high-water mark (so ru_maxrss measures from here); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load_st(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def build_homogeneous(variant, g, w, x, heads, in_dim, out_dim, R):
    import torch
    from torch_geometric.nn import FastRGCNConv, RGATConv, RGCNConv

    edge_index = torch.stack([g["src"], g["dst"]])
    edge_type = g["rel"]
    if variant in ("RGCNConv", "FastRGCNConv"):
        cls = RGCNConv if variant == "RGCNConv" else FastRGCNConv
        layer = cls(in_dim, out_dim, R)
        assign = {"weight": w["W"], "root": w["root"], "bias": w["bias"]}
    elif variant == "RGATConv":
        layer = RGATConv(in_dim, out_dim // heads, R, heads=heads)
        assign = {"weight": w["W"], "q": w["q"], "k": w["k"], "bias": w["bias"]}
    else:
        raise ValueError(variant)
    params = dict(layer.named_parameters())
    for name, value in assign.items():
        if tuple(params[name].shape) != tuple(value.shape):
            raise RuntimeError(f"{variant}.{name}: PyG shape {tuple(params[name].shape)}, "
                               f"pigeon's {tuple(value.shape)}")
        params[name].data.copy_(value)

    def forward():
        return layer(x, edge_index, edge_type)

    def unpack(y):
        return y, None

    return layer, forward, unpack, {}


def hetero_structure(g):
    """PyG node and edge types from pigeon's graph: node type t is "t{t}"; relation r joining
    (s, d) is edge type ("t{s}", "r{r}", "t{d}"); a relation joining several type pairs becomes
    several edge types sharing r's weights."""
    import torch

    off = g["type_offsets"].tolist()
    T = len(off) - 1
    nt = g["node_type"]
    for t in range(T):
        if not bool((nt[off[t]:off[t + 1]] == t).all()):
            raise RuntimeError("nodes are not grouped by type in pigeon's export")
    src, dst, rel = g["src"], g["dst"], g["rel"]
    key = (rel * T + nt[src]) * T + nt[dst]
    order = torch.argsort(key, stable=True)
    uniq, counts = torch.unique_consecutive(key[order], return_counts=True)
    edge_index_dict, rel_of, start = {}, {}, 0
    for k, c in zip(uniq.tolist(), counts.tolist()):
        r, s, d = k // (T * T), (k // T) % T, k % T
        idx = order[start:start + c]
        start += c
        et = (f"t{s}", f"r{r}", f"t{d}")
        edge_index_dict[et] = torch.stack([src[idx] - off[s], dst[idx] - off[d]])
        rel_of[et] = r
    pairs = {}
    for (s, r, d) in edge_index_dict:
        pairs.setdefault(r, []).append((s, d))
    split = {r: p for r, p in pairs.items() if len(p) > 1}
    return T, off, edge_index_dict, rel_of, split


def build_hgt(g, w, x, heads, in_dim, out_dim):
    import torch
    from torch_geometric.nn import HGTConv

    T, off, edge_index_dict, rel_of, split = hetero_structure(g)
    node_types = [f"t{t}" for t in range(T)]
    edge_types = list(edge_index_dict)
    layer = HGTConv(in_dim, out_dim, (node_types, edge_types), heads=heads)
    H, D, F, E = heads, out_dim // heads, out_dim, len(edge_types)
    with torch.no_grad():
        for t, name in enumerate(node_types):
            lin = layer.kqv_lin.lins[name]
            lin.weight.copy_(torch.cat([w[f"W{n}"][t].reshape(in_dim, F).T for n in "kqv"], 0))
            lin.bias.copy_(torch.cat([w[f"b{n}"][t].reshape(F) for n in "kqv"], 0))
            layer.out_lin.lins[name].weight.copy_(w["Wout"][t].T)
            layer.out_lin.lins[name].bias.copy_(w["bout"][t])
            layer.skip[name].copy_(w["skip"][t].reshape(1))
        for e, et in enumerate(edge_types):
            r = rel_of[et]
            for h in range(H):
                layer.k_rel.weight[h * E + e].copy_(w["k_rel"][r, h])
                layer.v_rel.weight[h * E + e].copy_(w["v_rel"][r, h])
            layer.p_rel["__".join(et)].copy_(w["p_rel"][r].reshape(1, H))
    x_dict = {name: x[off[t]:off[t + 1]] for t, name in enumerate(node_types)}

    def forward():
        return layer(x_dict, edge_index_dict)

    def unpack(out_dict):
        """The output as one [N, F] tensor and a mask of the rows PyG produced."""
        y = torch.zeros(x.shape[0], out_dim, dtype=x.dtype)
        have = torch.zeros(x.shape[0], dtype=torch.bool)
        for t, name in enumerate(node_types):
            if out_dict.get(name) is not None:
                y[off[t]:off[t + 1]] = out_dict[name]
                have[off[t]:off[t + 1]] = True
        return y, have

    info = {"node_types": T, "edge_types": E,
            "relations_split": {r: [list(p) for p in ps] for r, ps in split.items()}}
    return layer, forward, unpack, info


def check_output(y, have, ref, w, x64, model, node_type, tol):
    """Compares PyG's output with pigeon's reference; rows PyG does not produce (HGT node types
    that receive no edges) are checked against pigeon's formula there instead."""
    import torch

    y = y.double()
    scale = float(ref.abs().max()) or 1.0
    rows = torch.ones(ref.shape[0], dtype=torch.bool) if have is None else have
    diff = (y[rows] - ref[rows]).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    res = {"scale": scale, "max_abs": max_abs, "rel_err": max_abs / scale, "tol": tol,
           "rows_compared": int(rows.sum()), "rows": int(ref.shape[0])}
    ok = res["rel_err"] <= tol and math.isfinite(max_abs)
    missing = ~rows
    if model == "hgt" and bool(missing.any()):
        # No incoming edge: aggregation 0, gelu(0) = 0, o = bout[t]; out = s*o + (1-s)*x.
        s = torch.sigmoid(w["skip"].double())[node_type[missing]].unsqueeze(1)
        expect = s * w["bout"].double()[node_type[missing]] + (1 - s) * x64[missing]
        err = float((expect - ref[missing]).abs().max()) / scale
        res["rows_without_pyg_output"] = int(missing.sum())
        res["pigeon_formula_err_on_those"] = err
        ok = ok and err <= tol
    res["ok"] = ok
    return res


def worker(cfg):
    """Runs one configuration; prints `RESULT {json}`."""
    if cfg.get("mem_limit_gb"):
        lim = int(cfg["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
    import torch
    import torch_geometric

    torch.set_num_threads(cfg["threads"])
    torch.set_num_interop_threads(1)
    dtype = getattr(torch, cfg["dtype"])
    out = {"torch": torch.__version__, "pyg": torch_geometric.__version__,
           "threads": torch.get_num_threads()}
    g = load_st(cfg["graph"])
    w64 = load_st(cfg["weights"])
    w = {k: v.to(dtype) for k, v in w64.items()}
    x64 = load_st(cfg["inputs"])["h"].double()
    ref = load_st(cfg["output"])["out"].double()
    x = x64.to(dtype)
    model, variant = cfg["model"], cfg["variant"]
    if model == "hgt":
        layer, forward, unpack, info = build_hgt(g, w, x, cfg["heads"], cfg["in_dim"],
                                                 cfg["out_dim"])
    else:
        layer, forward, unpack, info = build_homogeneous(
            variant, g, w, x, cfg["heads"], cfg["in_dim"], cfg["out_dim"], cfg["relations"])
    out.update(info)
    layer.eval()
    import gc

    gc.collect()
    rss_before = rss_kb()
    out["mem_method"] = ("ru_maxrss after /proc/self/clear_refs reset" if reset_hwm()
                         else "ru_maxrss (not reset: includes setup)")
    times, cpu_times = [], []
    out["loadavg_before"] = os.getloadavg()[0]
    with torch.no_grad():
        for i in range(cfg["warmup"] + cfg["runs"]):
            t0, c0 = time.perf_counter(), time.process_time()
            y = forward()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if i == 0:
                y0 = y
            if i >= cfg["warmup"]:
                times.append(dt)
                cpu_times.append(dc)
            else:
                out["first_ms"] = dt * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["ms_median"] = statistics.median(times) * 1e3
    out["ms_min"] = min(times) * 1e3
    # CPU time of the process (all threads): with one thread, a measure of the work that
    # other processes competing for the cores do not inflate.
    out["cpu_ms_median"] = statistics.median(cpu_times) * 1e3
    out["loadavg_after"] = os.getloadavg()[0]
    out["runs"] = len(times)
    out["peak_rss_mb"] = peak / 1024
    out["fwd_extra_mb"] = max(0, peak - rss_before) / 1024
    out["rss_before_mb"] = rss_before / 1024
    yv, have = unpack(y0)
    out["check"] = check_output(yv, have, ref, w64, x64, model, g["node_type"], cfg["tol"])
    out["status"] = "ok" if out["check"]["ok"] else "FAIL"
    print("RESULT " + json.dumps(out), flush=True)


def worker_main(cfg):
    try:
        worker(cfg)
    except (MemoryError, RuntimeError) as e:
        msg = str(e)
        oom = isinstance(e, MemoryError) or "alloc" in msg.lower() or "memory" in msg.lower()
        print("RESULT " + json.dumps({"status": "oom" if oom else "error",
                                      "error": msg.splitlines()[0][:300] if msg else repr(e)}),
              flush=True)
        sys.exit(3)


# ----------------------------------------------------------------------------------------------
# The driver.


def run_cmd(cmd, env=None, timeout=None):
    log("$ " + " ".join(str(c) for c in cmd))
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                       timeout=timeout)
    return p


def pigeon_caps(pigeon):
    """Which of the commands this script needs the pigeon binary has."""
    caps = {}
    p = run_cmd([pigeon, "graph", "export", "--help"])
    caps["export"] = p.returncode == 0
    p = run_cmd([pigeon, "run", "--help"])
    caps["save_inputs"] = "--save-inputs" in p.stdout
    p = run_cmd([pigeon, "bench", "--help"])
    caps["bench"] = p.returncode == 0
    caps["bench_help"] = p.stdout if p.returncode == 0 else (p.stderr.strip().splitlines() or [""])[0]
    return caps


def model_params(model, a):
    ps = [f"in_dim={a.in_dim}", f"out_dim={a.out_dim}"]
    if model in ("rgat", "hgt"):
        ps.append(f"heads={a.heads}")
    return [x for p in ps for x in ("--param", p)]


def graph_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = f.metadata() or {}
        n_edges = f.get_slice("src").get_shape()[0]
    return {"nodes": int(meta["nodes"]), "relations": int(meta["relations"]),
            "node_types": int(meta["node_types"]), "edges": n_edges}


def prepare(pigeon, model, gname, spec, gfile, meta, a, work):
    """Writes weights, runs pigeon's reference; returns the files for the workers."""
    from safetensors.numpy import save_file

    d = work / slug(gname) / f"{model}-{a.in_dim}-{a.out_dim}-h{a.heads}-s{a.seed}"
    d.mkdir(parents=True, exist_ok=True)
    w = make_weights(model, meta["relations"], meta["node_types"], a.in_dim, a.out_dim, a.heads,
                     a.seed)
    save_file(w, str(d / "weights.safetensors"), metadata={"format": "pt"})
    cmd = [pigeon, "run", MODEL_FILES[model], "--graph", spec, "--backend", "reference",
           "--seed", a.seed, *model_params(model, a), "--weights", d / "weights.safetensors",
           "--save-inputs", d / "inputs.safetensors", "--output", d / "out.safetensors"]
    t0 = time.perf_counter()
    p = run_cmd(cmd)
    if p.returncode != 0:
        raise RuntimeError(f"pigeon run failed: {p.stderr.strip()}")
    return {"weights": str(d / "weights.safetensors"), "inputs": str(d / "inputs.safetensors"),
            "output": str(d / "out.safetensors"), "reference_s": time.perf_counter() - t0}


def run_worker(cfg, timeout):
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]),
               MKL_NUM_THREADS=str(cfg["threads"]))
    log(f"  PyG {cfg['variant']} ...")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "error": f"no result within {timeout} s"}
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    if proc.returncode in (-signal.SIGKILL, 137):
        return {"status": "oom", "error": "killed (SIGKILL), presumably out of memory"}
    tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"status": "error", "error": f"exit {proc.returncode}: {tail[:300]}"}


NUM = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def find_value(obj, want):
    """The first number in a JSON tree whose key matches `want` (a list of regexes, in order of
    preference), with the key's unit suffix; None if none."""
    flat = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + [str(k)])
        elif isinstance(o, (int, float)) and not isinstance(o, bool):
            flat.append(("/".join(path), float(o)))

    walk(obj, [])
    for pat in want:
        for key, v in flat:
            if re.search(pat, key):
                return key, v
    return None


def to_ms(key, v):
    for suf, f in (("_ns", 1e-6), ("_us", 1e-3), ("_ms", 1.0), ("_s", 1e3), ("secs", 1e3)):
        if key.endswith(suf):
            return v * f
    return v  # assume ms


def to_mb(key, v):
    for suf, f in (("bytes", 1 / 2**20), ("_kb", 1 / 1024), ("_mb", 1.0), ("_gb", 1024.0)):
        if key.lower().endswith(suf):
            return v * f
    return v / 2**20 if v > 1e5 else v  # a large bare number is bytes


def pigeon_bench(pigeon, caps, model, spec, files, a, work):
    """Runs `pigeon bench` (the CPU back end) on the same model, graph, dims and threads."""
    if not caps["bench"]:
        return {"status": "n/a", "why": f"this pigeon has no `bench` command ({caps['bench_help']})"}
    help_text = caps["bench_help"]
    cmd = [pigeon, "bench", MODEL_FILES[model], "--graph", spec, *model_params(model, a)]
    for flag, value in (("--threads", a.threads), ("--runs", a.runs), ("--warmup", a.warmup),
                        ("--weights", files["weights"])):
        if flag in help_text:
            cmd += [flag, value]
    if "--backend" in help_text:
        cmd += ["--backend", "cpu"]
    json_file = Path(work) / f"pigeon-bench-{model}-{slug(spec)}.json"
    json_to_file = re.search(r"--json <", help_text) is not None
    cmd += ["--json", json_file] if json_to_file else ["--json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    try:
        p = run_cmd(cmd, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    if p.returncode != 0:
        return {"status": "n/a", "why": "pigeon bench failed: " +
                (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    text = json_file.read_text() if json_to_file else p.stdout
    doc = None
    for chunk in [text] + list(reversed(text.strip().splitlines())):
        try:
            doc = json.loads(chunk)
            break
        except json.JSONDecodeError:
            continue
    if doc is None:
        return {"status": "n/a", "why": "pigeon bench printed no JSON"}
    res = {"status": "ok", "raw": doc}
    configs = doc.get("configs") if isinstance(doc, dict) else None
    if configs:  # the format of src/bench.rs: the first config is the default (all passes on)
        c = configs[0]
        res["ms"] = c.get("total_ms")
        res["layouts_ms"] = c.get("layouts_ms")
        res["buffer_mb"] = c["buffer_bytes"] / 2**20 if c.get("buffer_bytes") is not None else None
        if doc.get("peak_rss_bytes") is not None:
            res["peak_mb"] = doc["peak_rss_bytes"] / 2**20
        res["threads"] = doc.get("threads")
        return res
    t = find_value(doc, [r"(^|/)total[^/]*median", r"(^|/)total_ms$", r"(^|/)total", r"median"])
    if t:
        res["ms"] = to_ms(t[0], t[1])
    m = find_value(doc, [r"peak"])
    if m:
        res["peak_mb"] = to_mb(m[0], m[1])
    return res


def slug(s):
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_")


def fmt(v, f="{:.1f}"):
    return "n/a" if v is None else f.format(v)


def print_table(rows, a):
    hdr = ["graph", "model", "PyG layer", "check (rel err)", "thr", "PyG ms", "min", "cpu ms",
           "PyG peak MB",
           "PyG +fwd MB", "pigeon ms", "pigeon peak MB", "PyG / pigeon"]
    lines = []
    for r in rows:
        c = r.get("check") or {}
        st = r["status"]
        if st in ("ok", "FAIL"):
            chk = f"{'ok' if st == 'ok' else 'FAIL'} ({c.get('rel_err', float('nan')):.1e})"
            if c.get("rows_without_pyg_output"):
                chk += f", {c['rows_without_pyg_output']} rows not output by PyG"
        else:
            chk = st
        pg = r.get("pigeon") or {}
        ratio = None
        if r.get("ms_median") and pg.get("ms"):
            ratio = r["ms_median"] / pg["ms"]
        lines.append([r["graph"], r["model"], r["variant"], chk,
                      str(r.get("threads", r.get("threads_requested", "?"))),
                      fmt(r.get("ms_median")), fmt(r.get("ms_min")), fmt(r.get("cpu_ms_median")),
                      fmt(r.get("peak_rss_mb"), "{:.0f}"), fmt(r.get("fwd_extra_mb"), "{:.0f}"),
                      fmt(pg.get("ms")), fmt(pg.get("peak_mb"), "{:.0f}"),
                      fmt(ratio, "{:.2f}x")])
    w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for l in lines:
        print("| " + " | ".join(v.ljust(w[i]) for i, v in enumerate(l)) + " |")
    whys = {(r.get("pigeon") or {}).get("why") for r in rows} - {None}
    for why in whys:
        print(f"pigeon column n/a: {why}")
    for r in rows:
        if r["status"] not in ("ok", "FAIL"):
            print(f"{r['graph']} {r['variant']}: {r['status']}: {r.get('error', '')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="rgcn,rgat,hgt", help="comma-separated: rgcn,rgat,hgt")
    ap.add_argument("--variants", default=None,
                    help="comma-separated PyG layers to run (default: all for the models)")
    ap.add_argument("--graphs", nargs="+", default=DEFAULT_GRAPHS,
                    help=f"graph specs or aliases ({', '.join(GRAPH_ALIASES)})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--out-dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="PyG's precision (pigeon's reference is f64)")
    ap.add_argument("--tol", type=float, default=None,
                    help="max |pyg - pigeon| / max |pigeon| (default 1e-4 f32, 1e-9 f64)")
    ap.add_argument("--pigeon", default=os.environ.get("PIGEON", REPO / "target/release/pigeon"))
    ap.add_argument("--timeout", type=float, default=600, help="seconds per configuration")
    ap.add_argument("--mem-limit-gb", type=float, default=14,
                    help="RLIMIT_DATA of each PyG process (beyond it: `oom`); 0 for none")
    ap.add_argument("--work", default=os.environ.get("TMPDIR", "/tmp") + "/pigeon-pyg-bench")
    ap.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--from-json", default=None,
                    help="only print the table of JSON lines saved earlier with --json-out")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker_main(json.loads(a.worker))
        return 0
    if a.from_json:
        with open(a.from_json) as f:
            print_table([json.loads(line) for line in f if line.strip()], a)
        return 0
    tol = a.tol if a.tol is not None else (1e-4 if a.dtype == "float32" else 1e-9)
    pigeon = Path(a.pigeon)
    if not pigeon.exists():
        log(f"error: no pigeon binary at {pigeon} (build with `cargo build --release` or pass "
            f"--pigeon)")
        return 2
    caps = pigeon_caps(pigeon)
    if not (caps["export"] and caps["save_inputs"]):
        log("error: this pigeon lacks `graph export` or `run --save-inputs`; rebuild it")
        return 2
    if not caps["bench"]:
        log(f"note: pigeon has no `bench` command yet ({caps['bench_help']}); "
            f"pigeon's column will be n/a")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    models = a.models.split(",")
    variants = a.variants.split(",") if a.variants else None
    rows, failed = [], False
    for gname in a.graphs:
        spec = GRAPH_ALIASES.get(gname, gname)
        gfile = work / slug(gname) / "graph.safetensors"
        gfile.parent.mkdir(parents=True, exist_ok=True)
        p = run_cmd([pigeon, "graph", "export", spec, "-o", gfile])
        if p.returncode != 0:
            log(f"error: cannot export {spec}: {p.stderr.strip()}")
            failed = True
            continue
        meta = graph_meta(gfile)
        log(f"{gname}: {meta}")
        for model in models:
            files = prepare(pigeon, model, gname, spec, gfile, meta, a, work)
            pg = pigeon_bench(pigeon, caps, model, spec, files, a, work)
            for variant in VARIANTS[model]:
                if variants and variant not in variants:
                    continue
                cfg = dict(model=model, variant=variant, graph=str(gfile), threads=a.threads,
                           runs=a.runs, warmup=a.warmup, heads=a.heads, in_dim=a.in_dim,
                           out_dim=a.out_dim, relations=meta["relations"], dtype=a.dtype,
                           tol=tol, mem_limit_gb=a.mem_limit_gb, **files)
                res = run_worker(cfg, a.timeout)
                row = {"graph": gname, "spec": spec, **meta, "model": model, "variant": variant,
                       "in_dim": a.in_dim, "out_dim": a.out_dim, "heads": a.heads,
                       "dtype": a.dtype, "threads_requested": a.threads,
                       "reference_s": files["reference_s"], **res,
                       "pigeon": {k: v for k, v in pg.items() if k != "raw"}}
                if pg.get("raw") is not None:
                    row["pigeon_raw"] = pg["raw"]
                if row["status"] == "FAIL":
                    failed = True
                    log(f"FAIL: {gname} {variant} differs from pigeon's reference: "
                        f"{json.dumps(row['check'])}")
                line = json.dumps(row)
                print("JSON " + line, flush=True)
                if a.json_out:
                    with open(a.json_out, "a") as f:
                        f.write(line + "\n")
                rows.append(row)
    print()
    print_table(rows, a)
    if failed:
        print("\nFAILED: at least one PyG output differs from pigeon's reference (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
