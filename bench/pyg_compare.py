#!/usr/bin/env python3
"""pigeon vs PyTorch Geometric on the CPU or the GPU: same graph, same weights, same inputs.

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

With `--device cuda` PyG runs on the GPU (TF32 off, CUDA-event timing, peak device memory from
torch's allocator, out-of-memory reported as OOM) and pigeon runs `pigeon bench --backend cuda`;
the script also measures the device's copy bandwidth once and reports each pigeon kernel's
achieved bandwidth against it, and the geometric mean over models x graphs of the fastest PyG
variant's time over pigeon's. It needs only torch and torch_geometric (the system `python3` of
a GPU machine will do; no bench/.venv there).

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
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("PIGEON_DATASETS", REPO.parent / "shared" / "datasets")).resolve()


def graph_aliases(datasets):
    """The short graph names, with the datasets read from `datasets`."""
    return {
        "aifb": f"rdf:{datasets}/aifb",
        "mutag": f"rdf:{datasets}/mutag",
        "acm": f"heco:{datasets}/acm",
        "fb15k-237": f"triples:{datasets}/fb15k-237,inverse",
        "wn18rr": f"triples:{datasets}/wn18rr,inverse",
        # HGB release: link.dat, meta.dat, info.dat (both directions are already link types).
        "imdb": f"hgb:{datasets}/imdb",
        "bgs-like": "synthetic:like=bgs",
        "am-like": "synthetic:like=am",
        # 9 nodes, 3 node types, 3 relations each joining several type pairs, a node type that
        # receives no edge, a multi-edge, a self-loop and an isolated node: checks the HGT
        # mapping.
        "mixed": f"hgb:{REPO}/bench/fixtures/mixed",
    }


GRAPH_ALIASES = graph_aliases(DATASETS)
DEFAULT_GRAPHS = ["aifb", "mutag", "acm", "fb15k-237", "bgs-like"]
# With --device cuda, graphs with more edges than this are checked against pigeon's CPU back end
# rather than the reference interpreter (see `reference_backend`).
CUDA_CPU_REFERENCE_ABOVE = 2_000_000
DEFAULT_GRAPHS_CUDA = ["aifb", "mutag", "fb15k-237", "wn18rr", "acm", "imdb", "bgs-like", "am-like"]
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
    """A safetensors file as a dict of torch tensors."""
    try:
        from safetensors.torch import load_file
    except ImportError:  # a GPU machine's system Python may lack it: read the format here
        import torch

        return {k: torch.from_numpy(v) for k, v in read_st_plain(path)[1].items()}
    return load_file(str(path))


# safetensors without the `safetensors` package (the format: an 8-byte little-endian header
# length, a JSON header of names, dtypes, shapes and byte ranges, then the data).
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_st_plain(path, data=True):
    """(metadata, {name: numpy array}) of a safetensors file; arrays only when `data`."""
    import numpy as np

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read() if data else b""
    meta = header.pop("__metadata__", None) or {}
    arrays = {}
    for name, t in header.items():
        if not data:
            arrays[name] = t["shape"]
            continue
        lo, hi = t["data_offsets"]
        arr = np.frombuffer(blob[lo:hi], dtype=np.dtype(ST_DTYPES[t["dtype"]]))
        arrays[name] = arr.reshape(t["shape"]).astype(arr.dtype.newbyteorder("="))
    return meta, arrays


def save_st(arrays, path, metadata):
    """Writes numpy arrays as safetensors (with the package when it is installed)."""
    try:
        from safetensors.numpy import save_file
    except ImportError:
        save_st_plain(arrays, path, metadata)
        return
    save_file(arrays, str(path), metadata=metadata)


def save_st_plain(arrays, path, metadata):
    import numpy as np

    codes = {np.dtype(v).newbyteorder("<"): k for k, v in ST_DTYPES.items()}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder != "|" else a.dtype
        b = a.astype(dt).tobytes()
        header[name] = {"dtype": codes[dt], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def build_homogeneous(variant, g, w, x, heads, in_dim, out_dim, R, device="cpu"):
    import torch
    from torch_geometric.nn import FastRGCNConv, RGATConv, RGCNConv

    edge_index = torch.stack([g["src"], g["dst"]]).to(device)
    edge_type = g["rel"].to(device)
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
    layer.to(device)
    x = x.to(device)

    def forward():
        return layer(x, edge_index, edge_type)

    def unpack(y):
        return y.cpu(), None

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


def build_hgt(g, w, x, heads, in_dim, out_dim, device="cpu"):
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
    layer.to(device)
    x_dict = {name: x[off[t]:off[t + 1]].to(device) for t, name in enumerate(node_types)}
    edge_index_dict = {et: ei.to(device) for et, ei in edge_index_dict.items()}

    def forward():
        return layer(x_dict, edge_index_dict)

    def unpack(out_dict):
        """The output as one [N, F] tensor and a mask of the rows PyG produced."""
        y = torch.zeros(x.shape[0], out_dim, dtype=x.dtype)
        have = torch.zeros(x.shape[0], dtype=torch.bool)
        for t, name in enumerate(node_types):
            if out_dict.get(name) is not None:
                y[off[t]:off[t + 1]] = out_dict[name].cpu()
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


def cuda_setup(torch):
    """Fails clearly without a CUDA device; turns TF32 off (pigeon's f32 kernels are f32)."""
    if not torch.cuda.is_available():
        raise NoCuda(f"--device cuda: torch {torch.__version__} (CUDA {torch.version.cuda}) "
                     f"sees no GPU: torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return {"gpu": torch.cuda.get_device_name(), "tf32": False,
            "capability": ".".join(map(str, torch.cuda.get_device_capability()))}


class NoCuda(Exception):
    """torch has no usable CUDA device."""


def time_cuda(torch, forward, cfg, out):
    """Warm-up and timed forward passes on the GPU; returns the first pass's output.

    Time: CUDA events around each pass (`ms_*`), and the host's wall time from a synchronised
    start to the synchronised end (`wall_ms_median`). Memory: torch's caching allocator, peak
    reset right before the passes: `peak_dev_mb` is the most allocated at once during them
    (graph, inputs and weights included), `fwd_extra_dev_mb` that minus what was allocated
    before them."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times, walls, y0 = [], [], None
    with torch.no_grad():
        for i in range(cfg["warmup"] + cfg["runs"]):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            start.record()
            y = forward()
            end.record()
            end.synchronize()
            wall = (time.perf_counter() - t0) * 1e3
            ms = start.elapsed_time(end)
            if i == 0:
                y0 = y
                out["first_ms"] = ms
            if i >= cfg["warmup"]:
                times.append(ms)
                walls.append(wall)
            del y
    peak = torch.cuda.max_memory_allocated()
    out["ms_median"] = statistics.median(times)
    out["ms_min"] = min(times)
    out["wall_ms_median"] = statistics.median(walls)
    out["runs"] = len(times)
    out["timing"] = "CUDA events around each forward pass"
    out["peak_dev_mb"] = peak / 2**20
    out["fwd_extra_dev_mb"] = max(0, peak - before) / 2**20
    out["dev_before_mb"] = before / 2**20
    out["peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    out["mem_method"] = "torch.cuda.max_memory_allocated after reset_peak_memory_stats"
    return y0


def worker(cfg):
    """Runs one configuration; prints `RESULT {json}`."""
    device = cfg.get("device", "cpu")
    if cfg.get("mem_limit_gb") and device == "cpu":
        lim = int(cfg["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
    import torch
    import torch_geometric

    torch.set_num_threads(cfg["threads"])
    torch.set_num_interop_threads(1)
    dtype = getattr(torch, cfg["dtype"])
    out = {"torch": torch.__version__, "pyg": torch_geometric.__version__,
           "threads": torch.get_num_threads()}
    if device == "cuda":
        out.update(cuda_setup(torch), device="cuda")
    g = load_st(cfg["graph"])
    w64 = load_st(cfg["weights"])
    w = {k: v.to(dtype) for k, v in w64.items()}
    x64 = load_st(cfg["inputs"])["h"].double()
    ref = load_st(cfg["output"])["out"].double()
    x = x64.to(dtype)
    model, variant = cfg["model"], cfg["variant"]
    if model == "hgt":
        layer, forward, unpack, info = build_hgt(g, w, x, cfg["heads"], cfg["in_dim"],
                                                 cfg["out_dim"], device)
    else:
        layer, forward, unpack, info = build_homogeneous(
            variant, g, w, x, cfg["heads"], cfg["in_dim"], cfg["out_dim"], cfg["relations"],
            device)
    out.update(info)
    layer.eval()
    import gc

    gc.collect()
    if device == "cuda":
        y0 = time_cuda(torch, forward, cfg, out)
        finish(out, unpack(y0), ref, w64, x64, model, g, cfg)
        return
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
    finish(out, unpack(y0), ref, w64, x64, model, g, cfg)


def finish(out, unpacked, ref, w64, x64, model, g, cfg):
    """Checks the output against pigeon's reference and prints the result line."""
    yv, have = unpacked
    out["check"] = check_output(yv, have, ref, w64, x64, model, g["node_type"], cfg["tol"])
    out["status"] = "ok" if out["check"]["ok"] else "FAIL"
    print("RESULT " + json.dumps(out), flush=True)


def copy_bandwidth(cfg):
    """The device's copy bandwidth: a device-to-device copy of `bytes`, bytes read + written
    over the median time of `runs` copies (CUDA events) after 3 warm-up copies."""
    import torch

    info = cuda_setup(torch)
    n = cfg["bytes"] // 4
    src = torch.ones(n, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    times = []
    for i in range(3 + cfg["runs"]):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    props = torch.cuda.get_device_properties(0)
    res = {"status": "ok", "copy_ms": ms, "copy_bytes": 2 * n * 4,
           "copy_gbps": 2 * n * 4 / (ms * 1e-3) / 1e9, "runs": len(times),
           "torch": torch.__version__, "cuda": torch.version.cuda,
           "device_mem_mb": props.total_memory / 2**20, **info}
    print("RESULT " + json.dumps(res), flush=True)


def is_cuda_oom(e):
    """Whether an exception is the GPU running out of memory (torch's allocator or cuBLAS)."""
    msg = str(e)
    return (type(e).__name__ == "OutOfMemoryError" or "out of memory" in msg.lower()
            or "ALLOC_FAILED" in msg)


def worker_main(cfg):
    try:
        if cfg.get("kind") == "copy":
            copy_bandwidth(cfg)
        else:
            worker(cfg)
    except NoCuda as e:
        print("RESULT " + json.dumps({"status": "no-cuda", "error": str(e)}), flush=True)
        sys.exit(3)
    except (MemoryError, RuntimeError) as e:
        msg = str(e)
        if cfg.get("device", "cpu") == "cuda" or cfg.get("kind") == "copy":
            status = "OOM" if is_cuda_oom(e) else "error"
        else:
            oom = isinstance(e, MemoryError) or "alloc" in msg.lower() or "memory" in msg.lower()
            status = "oom" if oom else "error"
        print("RESULT " + json.dumps({"status": status,
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
    try:
        from safetensors import safe_open
    except ImportError:
        meta, shapes = read_st_plain(path, data=False)
        n_edges = shapes["src"][0]
    else:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            n_edges = f.get_slice("src").get_shape()[0]
    return {"nodes": int(meta["nodes"]), "relations": int(meta["relations"]),
            "node_types": int(meta["node_types"]), "edges": n_edges}


def prepare(pigeon, model, gname, spec, gfile, meta, a, work):
    """Writes weights, runs pigeon's reference; returns the files for the workers."""
    d = work / slug(gname) / f"{model}-{a.in_dim}-{a.out_dim}-h{a.heads}-s{a.seed}"
    d.mkdir(parents=True, exist_ok=True)
    w = make_weights(model, meta["relations"], meta["node_types"], a.in_dim, a.out_dim, a.heads,
                     a.seed)
    save_st(w, d / "weights.safetensors", {"format": "pt"})
    backend = reference_backend(meta, a)
    cmd = [pigeon, "run", MODEL_FILES[model], "--graph", spec, "--backend", backend,
           "--seed", a.seed, *model_params(model, a), "--weights", d / "weights.safetensors",
           "--save-inputs", d / "inputs.safetensors", "--output", d / "out.safetensors"]
    t0 = time.perf_counter()
    p = run_cmd(cmd)
    if p.returncode != 0:
        raise RuntimeError(f"pigeon run failed: {p.stderr.strip()}")
    files = {"weights": str(d / "weights.safetensors"), "inputs": str(d / "inputs.safetensors"),
             "output": str(d / "out.safetensors"), "reference_s": time.perf_counter() - t0}
    if backend != "reference":
        files["reference_backend"] = backend
    return files


def reference_backend(meta, a):
    """pigeon's back end for the output PyG is checked against: the f64 reference interpreter,
    or pigeon's CPU back end (f32, all cores) on graphs with more than --cpu-reference-above
    edges (the interpreter is single-threaded: a minute per model on AM-sized graphs)."""
    limit = a.cpu_reference_above
    if limit is None and a.device == "cuda":
        limit = CUDA_CPU_REFERENCE_ABOVE
    return "cpu" if limit is not None and meta["edges"] > limit else "reference"


ACTIVE_WORKERS = set()


def stop_workers(signum, _frame):
    """On SIGTERM (a time limit around the whole run): kills the running worker's process
    group (it has its own session, so the limit's signal does not reach it), then exits."""
    for pid in list(ACTIVE_WORKERS):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    log(f"stopped by signal {signum}")
    sys.exit(128 + signum)


def run_worker(cfg, timeout):
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]),
               MKL_NUM_THREADS=str(cfg["threads"]))
    log(f"  PyG {cfg.get('variant', cfg.get('kind'))} ...")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    ACTIVE_WORKERS.add(proc.pid)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "error": f"no result within {timeout} s"}
    finally:
        ACTIVE_WORKERS.discard(proc.pid)
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
    """Runs `pigeon bench` (the CPU back end, or with --device cuda the CUDA back end) on the
    same model, graph, dims and threads."""
    if not caps["bench"]:
        return {"status": "n/a", "why": f"this pigeon has no `bench` command ({caps['bench_help']})"}
    help_text = caps["bench_help"]
    cuda = a.device == "cuda"
    if cuda and "--backend" not in help_text:
        return {"status": "n/a", "why": "this pigeon's `bench` has no --backend (built before "
                                        "the CUDA back end): rebuild it"}
    cmd = [pigeon, "bench", MODEL_FILES[model], "--graph", spec, *model_params(model, a)]
    for flag, value in (("--threads", a.threads), ("--runs", a.runs), ("--warmup", a.warmup),
                        ("--weights", files["weights"])):
        if flag in help_text:
            cmd += [flag, value]
    if "--backend" in help_text:
        cmd += ["--backend", "cuda" if cuda else "cpu"]
    json_file = Path(work) / f"pigeon-bench-{model}-{slug(spec)}{'-cuda' if cuda else ''}.json"
    json_to_file = re.search(r"--json <", help_text) is not None
    cmd += ["--json", json_file] if json_to_file else ["--json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    try:
        p = run_cmd(cmd, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
        if cuda and "device memory" in p.stderr:
            return {"status": "OOM", "why": "pigeon bench: " + last}
        return {"status": "n/a", "why": "pigeon bench failed: " + last}
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
        if cuda:
            res["backend"] = doc.get("backend")
            res["kernels"] = [k for k in c.get("kernels", []) if isinstance(k, dict)]
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


def measure_copy(a):
    """Measures the device's copy bandwidth in a fresh subprocess and prints it with the GPU's
    name; None (after saying why) when torch has no usable CUDA device."""
    cfg = {"kind": "copy", "bytes": int(a.copy_gib * 2**30), "runs": 20, "threads": a.threads}
    res = run_worker(cfg, a.timeout)
    if res.get("status") == "no-cuda":
        log(f"error: {res['error']}; --device cuda needs a GPU and a CUDA build of torch")
        return None
    if res.get("status") != "ok":
        log(f"error: cannot measure the copy bandwidth on the GPU: {res.get('status')}: "
            f"{res.get('error', '')}")
        return None
    print(f"GPU: {res['gpu']} (compute capability {res['capability']}, "
          f"{res['device_mem_mb']:,.0f} MiB), torch {res['torch']} (CUDA {res['cuda']})")
    print("PyG runs with TF32 off: torch.backends.cuda.matmul.allow_tf32 = False, "
          "torch.backends.cudnn.allow_tf32 = False")
    print(f"copy bandwidth: {res['copy_gbps']:,.0f} GB/s (device-to-device copy of "
          f"{a.copy_gib:g} GiB: {res['copy_bytes'] / 1e9:.2f} GB read + written in "
          f"{res['copy_ms']:.3f} ms, median of {res['runs']})", flush=True)
    return res


def markdown(hdr, lines):
    """Prints a Markdown table with padded columns."""
    w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for l in lines:
        print("| " + " | ".join(v.ljust(w[i]) for i, v in enumerate(l)) + " |")


def check_cell(r):
    st, c = r["status"], r.get("check") or {}
    if st not in ("ok", "FAIL"):
        return st
    chk = f"{'ok' if st == 'ok' else 'FAIL'} ({c.get('rel_err', float('nan')):.1e})"
    if c.get("rows_without_pyg_output"):
        chk += f", {c['rows_without_pyg_output']} rows not output by PyG"
    return chk


def by_pair(rows):
    """Rows grouped by (model, graph), in order of first appearance."""
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["graph"]), []).append(r)
    return groups


def fastest(group):
    """The fastest PyG variant of a (model, graph) pair whose output passed the check."""
    ok = [r for r in group if r["status"] == "ok" and r.get("ms_median")]
    return min(ok, key=lambda r: r["ms_median"]) if ok else None


def print_cuda_tables(rows, brief=False):
    """The GPU tables: PyG and pigeon side by side, the geometric mean of the ratios, and each
    pigeon kernel's achieved bandwidth against the measured copy bandwidth (with `brief`, only
    how many traversal kernels reach half of it)."""
    first = next((r for r in rows if r.get("gpu")), {})
    copy = first.get("copy_gbps")
    print(f"GPU: {first.get('gpu', '?')}; PyG with TF32 off; copy bandwidth "
          f"{fmt(copy, '{:,.0f}')} GB/s")
    backends = {(r.get("pigeon") or {}).get("backend") for r in rows} - {None}
    for b in sorted(backends):
        print(f"pigeon back end: {b}")
    groups = by_pair(rows)
    hdr = ["model", "graph", "PyG layer", "check (rel err)", "PyG ms", "pigeon ms",
           "PyG / pigeon", "PyG peak MB", "PyG +fwd MB", "pigeon buffers MB", "OOM"]
    lines = []
    for (model, graph), group in groups.items():
        best = fastest(group)
        for r in group:
            pg = r.get("pigeon") or {}
            ratio = None
            if r.get("ms_median") and pg.get("ms"):
                ratio = r["ms_median"] / pg["ms"]
            oom = [who for who, st in (("PyG", r["status"]), ("pigeon", pg.get("status")))
                   if st == "OOM"]
            lines.append([model, graph, r["variant"], check_cell(r),
                          fmt(r.get("ms_median"), "{:.3f}"),
                          fmt(pg.get("ms"), "{:.3f}") if pg.get("ms") else pg.get("status", "n/a"),
                          fmt(ratio, "{:.2f}x") + ("*" if r is best and ratio else ""),
                          fmt(r.get("peak_dev_mb"), "{:,.0f}"),
                          fmt(r.get("fwd_extra_dev_mb"), "{:,.0f}"),
                          fmt(pg.get("buffer_mb"), "{:,.1f}"), " ".join(oom)])
    markdown(hdr, lines)
    print("* the fastest PyG variant of the model and graph (its ratio enters the mean)")
    summarize_ratios(groups)
    print_kernel_table(groups, copy, brief)
    whys = {(r.get("pigeon") or {}).get("why") for r in rows} - {None}
    for why in sorted(whys):
        print(f"pigeon column: {why}")
    for r in rows:
        if r["status"] not in ("ok", "FAIL"):
            print(f"{r['graph']} {r['variant']}: {r['status']}: {r.get('error', '')}")


def summarize_ratios(groups):
    """Prints the geometric mean over (model, graph) of the fastest PyG variant's time over
    pigeon's, and the pairs that have no ratio (out of memory, failures)."""
    ratios, notes = [], []
    for (model, graph), group in groups.items():
        pg = group[0].get("pigeon") or {}
        best = fastest(group)
        if best and pg.get("ms"):
            ratios.append(best["ms_median"] / pg["ms"])
        elif pg.get("status") == "OOM" and best:
            notes.append(f"{model} on {graph}: pigeon out of device memory where PyG "
                         f"{best['variant']} fits (against the target)")
        elif pg.get("ms") and all(r["status"] == "OOM" for r in group):
            notes.append(f"{model} on {graph}: every PyG variant out of device memory, "
                         f"pigeon fits ({pg['ms']:.3f} ms)")
        else:
            why = ", ".join(f"{r['variant']} {r['status']}" for r in group)
            notes.append(f"{model} on {graph}: no ratio (PyG: {why}; pigeon: "
                         f"{pg.get('status', 'n/a')})")
    if ratios:
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"geometric mean of fastest PyG variant / pigeon over {len(ratios)} model x graph "
              f"pairs: {gm:.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x; issue target "
              f"on an H100: >= 5x)")
    else:
        print("geometric mean: no model x graph pair has both a PyG and a pigeon time")
    for n in notes:
        print(n)


def print_kernel_table(groups, copy, brief=False):
    """Each pigeon kernel's achieved bandwidth (fewest bytes it must move over its median time)
    and its fraction of the measured copy bandwidth. The count of traversal kernels at half of
    it is given for all of them and for those that move at least what the copy moves in 10 us
    (smaller ones are bound by launch latency, not bandwidth)."""
    lines = []
    trav = {"all": [0, 0], "large": [0, 0]}
    large = copy * 1e4 if copy else 0.0  # bytes the copy moves in 10 us
    for (model, graph), group in groups.items():
        kernels = (group[0].get("pigeon") or {}).get("kernels") or []
        total_b = total_ms = 0.0
        for k in kernels:
            ms, b = k.get("ms"), k.get("fewest_bytes")
            if ms is None or b is None:
                continue
            gbps = b / max(ms, 1e-9) / 1e6
            frac = gbps / copy if copy else None
            total_b, total_ms = total_b + b, total_ms + ms
            if "traversal" in str(k.get("kernel")):
                for key in ("all", "large") if b >= large else ("all",):
                    trav[key][0] += frac is not None and frac >= 0.5
                    trav[key][1] += 1
            lines.append([model, graph, str(k.get("kernel")), f"{ms:.4f}", f"{b / 1e6:,.2f}",
                          f"{gbps:,.0f}", fmt(frac and frac * 100, "{:.0f}%")])
        if total_ms:
            gbps = total_b / total_ms / 1e6
            lines.append([model, graph, "all kernels", f"{total_ms:.4f}", f"{total_b / 1e6:,.2f}",
                          f"{gbps:,.0f}", fmt(copy and gbps / copy * 100, "{:.0f}%")])
    if not lines:
        print("\nno per-kernel times from pigeon (pigeon bench --backend cuda did not run)")
        return
    summary = (f"traversal kernels at half the copy bandwidth or better: {trav['all'][0]} of "
               f"{trav['all'][1]}; of those moving at least {large / 1e6:,.0f} MB (10 us of "
               f"copying): {trav['large'][0]} of {trav['large'][1]} (issue target: all)")
    if brief:
        print(summary + "; per-kernel table: --from-json without --brief")
        return
    print(f"\npigeon's kernels: achieved bandwidth = fewest bytes the kernel must move / its "
          f"median time; copy bandwidth {fmt(copy, '{:,.0f}')} GB/s")
    markdown(["model", "graph", "kernel", "ms", "fewest MB", "GB/s", "% of copy"], lines)
    print(summary)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="rgcn,rgat,hgt", help="comma-separated: rgcn,rgat,hgt")
    ap.add_argument("--variants", default=None,
                    help="comma-separated PyG layers to run (default: all for the models)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where PyG and pigeon run (cuda: PyG on the GPU, pigeon bench "
                         "--backend cuda)")
    ap.add_argument("--graphs", nargs="+", default=None,
                    help=f"graph specs or aliases ({', '.join(GRAPH_ALIASES)}); default "
                         f"{' '.join(DEFAULT_GRAPHS)}, with --device cuda "
                         f"{' '.join(DEFAULT_GRAPHS_CUDA)}")
    ap.add_argument("--datasets", default=None,
                    help=f"the datasets folder of the aliases (default $PIGEON_DATASETS or "
                         f"{DATASETS})")
    ap.add_argument("--cpu-reference-above", type=int, default=None, metavar="EDGES",
                    help="check PyG against pigeon's CPU back end instead of the f64 reference "
                         "interpreter on graphs with more edges (default: never; with --device "
                         f"cuda {CUDA_CPU_REFERENCE_ABOVE:,})")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="--device cuda: size of the device-to-device copy that measures the "
                         "copy bandwidth")
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
    ap.add_argument("--brief", action="store_true",
                    help="with --from-json of a --device cuda run: leave out the per-kernel table")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker_main(json.loads(a.worker))
        return 0
    if a.from_json:
        with open(a.from_json) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        if any(r.get("device") == "cuda" for r in rows):
            print_cuda_tables(rows, a.brief)
        else:
            print_table(rows, a)
        return 0
    signal.signal(signal.SIGTERM, stop_workers)
    cuda = a.device == "cuda"
    aliases = graph_aliases(Path(a.datasets).resolve()) if a.datasets else GRAPH_ALIASES
    if a.graphs is None:
        a.graphs = DEFAULT_GRAPHS_CUDA if cuda else DEFAULT_GRAPHS
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
    gpu = {}
    if cuda:
        gpu = measure_copy(a)
        if gpu is None:
            return 2
    models = a.models.split(",")
    variants = a.variants.split(",") if a.variants else None
    rows, failed = [], False
    for gname in a.graphs:
        spec = aliases.get(gname, gname)
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
                if cuda:
                    cfg["device"] = "cuda"
                res = run_worker(cfg, a.timeout)
                row = {"graph": gname, "spec": spec, **meta, "model": model, "variant": variant,
                       "in_dim": a.in_dim, "out_dim": a.out_dim, "heads": a.heads,
                       "dtype": a.dtype, "threads_requested": a.threads,
                       "reference_s": files["reference_s"], **res,
                       "pigeon": {k: v for k, v in pg.items() if k != "raw"}}
                if cuda:
                    row.update(device="cuda", gpu=gpu.get("gpu"), copy_gbps=gpu.get("copy_gbps"))
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
    if cuda:
        print_cuda_tables(rows)
    else:
        print_table(rows, a)
    if failed:
        print("\nFAILED: at least one PyG output differs from pigeon's reference (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
