#!/usr/bin/env python3
"""pigeon vs PyTorch Geometric, one training step (forward plus backward), side by side.

Issue 5, item 6. For each model (rgcn, rgat, hgt) and graph this script, reusing
`pyg_compare.py` (graph export, weights, reference, PyG layers, checks, worker processes,
`pigeon bench` parsing):

1. exports the graph and runs pigeon's reference on the weights written by pyg_compare
   (`pyg_compare.prepare`), builds every PyG variant of the model exactly as pyg_compare does and
   checks its forward output against pigeon's reference (`pyg_compare.check_output`);
2. times PyG's training step: zero grads, forward, loss = (out * G).sum() with a fixed random
   cotangent G (seeded, the shape of out), loss.backward() (the gradient of every weight; the
   inputs x do not require grad); no optimizer step. --warmup steps, then the median of --runs,
   torch.set_num_threads(--threads), each configuration in a fresh subprocess; peak RSS as
   pyg_compare measures it (high-water mark reset before the steps; "+step" = peak minus the
   RSS before them);
3. runs `pigeon bench MODEL --graph SPEC <params> --train --runs N --json FILE`
   (RAYON_NUM_THREADS=--threads) when `pigeon bench --help` lists `--train`, and reads
   `train_step_ms_median` and `peak_rss_bytes` from its JSON;
4. when `pigeon grad --help` works, has pigeon write the gradient of sum(out * G) for every
   weight (`pigeon grad ... --weights W --cotangent G -o GRADS`) and compares PyG's gradients,
   mapped back to pigeon's names and shapes (`pigeon_view`, the inverse of pyg_compare's weight
   mapping), weight by weight: max |pyg - pigeon| / max |pigeon| <= --tol, FAIL otherwise;
5. prints a table with the ratio PyG / pigeon and the geometric mean over model x graph of the
   fastest PyG variant's step time over pigeon's.

`--device cuda` does the same on the GPU (CUDA events, TF32 off, torch.cuda.max_memory_allocated,
`pigeon bench --backend cuda --train`). `--grad-selftest` checks this script's own gradient
plumbing in float64 without pigeon's gradients: linearity in G, and central finite differences
of the PyG forward through pyg_compare's weight mapping. See bench/README.md, "Training steps".
"""

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyg_compare as pc  # noqa: E402

log = pc.log
COTANGENT_SEED_OFFSET = 7919  # G's seed is --seed + this (the weights use --seed)

# pigeon name -> PyG parameter name for the homogeneous layers (no transposes): the inverse of
# the `assign` dicts in pyg_compare.build_homogeneous (not exposed there; see the README).
HOMOGENEOUS_MAP = {
    "rgcn": {"W": "weight", "root": "root", "bias": "bias"},
    "rgat": {"W": "weight", "q": "q", "k": "k", "bias": "bias"},
}


# ----------------------------------------------------------------------------------------------
# Wrapping pyg_compare where its functions are not parameterised for this script.


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def run_worker(cfg, timeout):
    """pyg_compare.run_worker (fresh process, timeout, OOM/kill handling), but running this
    script's worker: run_worker starts `sys.executable <pyg_compare.__file__> --worker`."""
    with patched(pc, "__file__", str(Path(__file__).resolve())):
        return pc.run_worker(cfg, timeout)


def worker_main(cfg):
    """pyg_compare.worker_main (its error and out-of-memory statuses) around this worker."""
    fn = selftest_worker if cfg.get("kind") == "selftest" else train_worker
    with patched(pc, "worker", fn):
        pc.worker_main(cfg)


def pigeon_train_bench(pigeon, caps, model, spec, files, a, work):
    """`pigeon bench ... --train` through pyg_compare.pigeon_bench (flags, threads, JSON file,
    parsing), with `--train` appended to the command it runs."""
    if not caps["bench"]:
        return {"status": "n/a", "why": f"this pigeon has no `bench` command ({caps['bench_help']})"}
    if "--train" not in caps["bench_help"]:
        return {"status": "n/a", "why": "pigeon bench has no --train"}
    orig = pc.run_cmd

    def run_cmd_train(cmd, env=None, timeout=None):
        return orig(list(cmd) + ["--train"], env=env, timeout=timeout)

    with patched(pc, "run_cmd", run_cmd_train):
        res = pc.pigeon_bench(pigeon, caps, model, spec, files, a, work)
    if res.get("status") != "ok":
        return {k: v for k, v in res.items() if k != "raw"}
    raw = res.get("raw")
    t = pc.find_value(raw, [r"(^|/)train_step_ms_median$", r"(^|/)train[^/]*median"])
    if not t:
        return {"status": "n/a", "why": "pigeon bench --train wrote no train_step_ms_median",
                "raw": raw}
    out = {"status": "ok", "ms": pc.to_ms(t[0], t[1]), "fwd_ms": res.get("ms"), "raw": raw,
           "threads": res.get("threads")}
    if a.device == "cuda":
        m = pc.find_value(raw, [r"(^|/)train[^/]*bytes$"])
        out["peak_mb"] = m[1] / 2**20 if m else res.get("buffer_mb")
        out["backend"] = res.get("backend")
    else:
        out["peak_mb"] = res.get("peak_mb")
    return out


# ----------------------------------------------------------------------------------------------
# The gradient mapping: PyG's tensors under pigeon's names (one place).


def pigeon_view(model, layer, hs, shapes, what="grad"):
    """PyG's parameters (`what="value"`) or their gradients (`what="grad"`) under pigeon's names
    and file shapes, as float64 tensors: the inverse of pyg_compare's weight mapping
    (build_homogeneous, build_hgt). Where pyg_compare copied one pigeon weight into several PyG
    tensors (an HGT relation joining several type pairs becomes several edge types), gradients
    are summed and values taken from the first copy. `hs` is pyg_compare.hetero_structure(g)
    (HGT only); `shapes` maps pigeon's names to their shapes. Also returns the PyG parameters
    that have no pigeon counterpart."""
    import torch

    params = dict(layer.named_parameters())

    def get(p):
        if what == "value":
            return p.detach().double().cpu()
        if p.grad is None:
            return torch.zeros(p.shape, dtype=torch.float64)
        return p.grad.detach().double().cpu()

    out = {n: torch.zeros(s, dtype=torch.float64) for n, s in shapes.items()}
    if model in HOMOGENEOUS_MAP:
        m = HOMOGENEOUS_MAP[model]
        for pname, qname in m.items():
            out[pname] = get(params[qname]).reshape(shapes[pname]).clone()
        used = set(m.values())
    elif model == "hgt":
        T, _off, eid, rel_of, _split = hs
        edge_types = list(eid)
        E = len(edge_types)
        H, D = shapes["k_rel"][1], shapes["k_rel"][2]
        F, in_dim = H * D, shapes["Wk"][1]
        for t in range(T):
            name = f"t{t}"
            w, b = get(layer.kqv_lin.lins[name].weight), get(layer.kqv_lin.lins[name].bias)
            for i, n in enumerate("kqv"):  # PyG's [3F, in] rows: K, Q, V; pigeon's [in, H, D]
                out[f"W{n}"][t] = w[i * F:(i + 1) * F].T.reshape(in_dim, H, D)
                out[f"b{n}"][t] = b[i * F:(i + 1) * F].reshape(H, D)
            out["Wout"][t] = get(layer.out_lin.lins[name].weight).T
            out["bout"][t] = get(layer.out_lin.lins[name].bias)
            out["skip"][t] = get(layer.skip[name]).reshape(())
        k_rel, v_rel = get(layer.k_rel.weight), get(layer.v_rel.weight)
        seen = set()
        for e, et in enumerate(edge_types):
            r = rel_of[et]
            if what == "grad" or r not in seen:
                acc = what == "grad" and r in seen
                for h in range(H):  # HeteroLinear weight entry h * E + e (heads major)
                    for n, src in (("k_rel", k_rel), ("v_rel", v_rel)):
                        out[n][r, h] = (out[n][r, h] + src[h * E + e]) if acc else src[h * E + e]
                p = get(layer.p_rel["__".join(et)]).reshape(H)
                out["p_rel"][r] = (out["p_rel"][r] + p) if acc else p
            seen.add(r)
        used = {n for n, _ in layer.named_parameters()
                if n.split(".")[0] in ("kqv_lin", "out_lin", "k_rel", "v_rel", "skip", "p_rel")}
    else:
        raise ValueError(model)
    unmapped = {n: p for n, p in params.items() if n not in used}
    return out, unmapped


def relations_with_edges(model, hs):
    """Relations that occur as some PyG edge type (HGT); None = all."""
    return None if model != "hgt" else sorted(set(hs[3].values()))


def roundtrip_error(model, layer, hs, w):
    """max |pigeon_view(values) - w| over the weights (relations without edges excluded for
    HGT: they have no PyG edge type): 0 when pigeon_view inverts pyg_compare's mapping."""
    view, _ = pigeon_view(model, layer, hs, {n: tuple(v.shape) for n, v in w.items()}, "value")
    rels = relations_with_edges(model, hs)
    err = 0.0
    for n, v in view.items():
        ref = w[n].double()
        if rels is not None and n in ("k_rel", "v_rel", "p_rel"):
            v, ref = v[rels], ref[rels]
        if v.numel():
            err = max(err, float((v - ref).abs().max()))
    return err


def compare_grads(mine, theirs, tol):
    """Per weight: max |mine - theirs| / max |theirs| (1 when theirs is all zero)."""
    per, ok = {}, True
    for n in sorted(set(mine) | set(theirs)):
        if n not in mine or n not in theirs:
            per[n] = {"ok": False, "why": "missing in " + ("PyG" if n not in mine else "pigeon")}
            ok = False
            continue
        a, b = mine[n].double(), theirs[n].double()
        if tuple(a.shape) != tuple(b.shape):
            per[n] = {"ok": False, "why": f"shape PyG {tuple(a.shape)} vs pigeon {tuple(b.shape)}"}
            ok = False
            continue
        scale = float(b.abs().max()) if b.numel() else 0.0
        diff = float((a - b).abs().max()) if b.numel() else 0.0
        rel = diff / (scale or 1.0)
        good = rel <= tol and math.isfinite(diff)
        per[n] = {"ok": good, "rel_err": rel, "max_abs": diff, "scale": scale}
        ok = ok and good
    worst = max((p.get("rel_err", math.inf) for p in per.values()), default=0.0)
    return {"ok": ok, "max_rel_err": worst, "tol": tol, "per_weight": per}


# ----------------------------------------------------------------------------------------------
# The worker: one PyG configuration in a fresh process.


def build(cfg, g, w, x, device):
    """The PyG layer, built by pyg_compare; plus the HGT structure (None otherwise)."""
    if cfg["model"] == "hgt":
        layer, forward, unpack, info = pc.build_hgt(g, w, x, cfg["heads"], cfg["in_dim"],
                                                    cfg["out_dim"], device)
        hs = pc.hetero_structure(g)
    else:
        layer, forward, unpack, info = pc.build_homogeneous(
            cfg["variant"], g, w, x, cfg["heads"], cfg["in_dim"], cfg["out_dim"],
            cfg["relations"], device)
        hs = None
    return layer, forward, unpack, info, hs


def make_loss(model, layer, hs, G, x):
    """loss(out) = sum(out * G) over all nodes, G [N, out_dim] in pigeon's node order. HGT: per
    node type; a node type PyG gives no output (it receives no edges) contributes pigeon's
    closed form there, s * bout + (1 - s) * x with s = sigmoid(skip) (see pyg_compare's
    check_output), so that the loss, and the gradients of bout and skip, are pigeon's."""
    if model != "hgt":
        return lambda y: (y * G).sum()
    T, off = hs[0], hs[1]
    Gd = {f"t{t}": G[off[t]:off[t + 1]] for t in range(T)}
    xd = {f"t{t}": x[off[t]:off[t + 1]] for t in range(T)}

    def loss(out_dict):
        total = 0
        for name, g_t in Gd.items():
            y = out_dict.get(name)
            if y is None:
                if g_t.shape[0] == 0:
                    continue
                s = layer.skip[name].sigmoid()
                y = s * layer.out_lin.lins[name].bias + (1 - s) * xd[name]
            total = total + (y * g_t).sum()
        return total

    return loss


def detached(y):
    if isinstance(y, dict):
        return {k: (None if v is None else v.detach()) for k, v in y.items()}
    return y.detach()


def train_worker(cfg):
    """Times the training step of one configuration; prints `RESULT {json}`."""
    device = cfg.get("device", "cpu")
    if cfg.get("mem_limit_gb") and device == "cpu":
        lim = int(cfg["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
    import torch
    import torch_geometric

    torch.set_num_threads(cfg["threads"])
    torch.set_num_interop_threads(1)
    dtype = getattr(torch, cfg["dtype"])
    if dtype == torch.float64:
        torch.set_default_dtype(torch.float64)  # pyg_compare builds layers in the default dtype
    out = {"torch": torch.__version__, "pyg": torch_geometric.__version__,
           "threads": torch.get_num_threads()}
    if device == "cuda":
        out.update(pc.cuda_setup(torch), device="cuda")
    g = pc.load_st(cfg["graph"])
    w64 = pc.load_st(cfg["weights"])
    w = {k: v.to(dtype) for k, v in w64.items()}
    x64 = pc.load_st(cfg["inputs"])["h"].double()
    ref = pc.load_st(cfg["output"])["out"].double()
    x = x64.to(dtype)
    G = pc.load_st(cfg["cotangent"])["out"].to(dtype)
    model = cfg["model"]
    layer, forward, unpack, info, hs = build(cfg, g, w, x, device)
    out.update(info)
    out["mapping_roundtrip_err"] = roundtrip_error(model, layer, hs, w)
    layer.train()
    xd, Gd = x.to(device), G.to(device)
    loss_fn = make_loss(model, layer, hs, Gd, xd)
    params = list(layer.parameters())

    def step():
        layer.zero_grad(set_to_none=True)
        y = forward()
        loss = loss_fn(y)
        loss.backward()
        return y, loss

    import gc

    gc.collect()
    if device == "cuda":
        y0, loss0 = time_cuda_steps(torch, step, cfg, out)
    else:
        y0, loss0 = time_cpu_steps(torch, step, cfg, out)
    out["loss"] = float(loss0)
    out["params_with_grad"] = sum(p.grad is not None for p in params)
    grads, unmapped = pigeon_view(model, layer, hs, {n: tuple(v.shape) for n, v in w64.items()})
    stray = [n for n, p in unmapped.items() if p.grad is not None and bool(p.grad.ne(0).any())]
    out["unmapped_params"] = sorted(unmapped)
    if stray:
        out["error"] = f"PyG parameters without a pigeon name got gradients: {stray}"
    if cfg.get("save_grads"):
        pc.save_st({n: v.float().numpy() for n, v in grads.items()}, cfg["save_grads"],
                   {"format": "pt"})
    if cfg.get("pigeon_grads"):
        theirs = pc.load_st(cfg["pigeon_grads"])
        out["grad_check"] = compare_grads(grads, theirs, cfg["tol"])
    yv, have = unpack(y0)
    out["check"] = pc.check_output(yv, have, ref, w64, x64, model, g["node_type"], cfg["tol"])
    ok = (out["check"]["ok"] and out["mapping_roundtrip_err"] == 0.0 and not stray
          and (out.get("grad_check") or {}).get("ok", True))
    out["status"] = "ok" if ok else "FAIL"
    print("RESULT " + json.dumps(out), flush=True)


def time_cpu_steps(torch, step, cfg, out):
    """--warmup then --runs training steps, wall and process CPU time; peak RSS over them (the
    high-water mark reset right before them, as pyg_compare does for the forward pass)."""
    rss_before = pc.rss_kb()
    out["mem_method"] = ("ru_maxrss after /proc/self/clear_refs reset" if pc.reset_hwm()
                         else "ru_maxrss (not reset: includes setup)")
    out["loadavg_before"] = os.getloadavg()[0]
    times, cpu_times, y0, loss0 = [], [], None, None
    for i in range(cfg["warmup"] + cfg["runs"]):
        t0, c0 = time.perf_counter(), time.process_time()
        y, loss = step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i == 0:
            y0, loss0 = detached(y), loss.detach()
            out["first_ms"] = dt * 1e3
        if i >= cfg["warmup"]:
            times.append(dt)
            cpu_times.append(dc)
        del y, loss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["ms_median"] = statistics.median(times) * 1e3
    out["ms_min"] = min(times) * 1e3
    out["cpu_ms_median"] = statistics.median(cpu_times) * 1e3
    out["loadavg_after"] = os.getloadavg()[0]
    out["runs"] = len(times)
    out["timing"] = "wall time of zero_grad + forward + loss + backward"
    out["peak_rss_mb"] = peak / 1024
    out["step_extra_mb"] = max(0, peak - rss_before) / 1024
    out["rss_before_mb"] = rss_before / 1024
    return y0, loss0


def time_cuda_steps(torch, step, cfg, out):
    """As pyg_compare.time_cuda, for training steps: CUDA events around each step, the host's
    synchronised wall time, and torch's allocator peak (reset right before the steps)."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times, walls, y0, loss0 = [], [], None, None
    for i in range(cfg["warmup"] + cfg["runs"]):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        y, loss = step()
        end.record()
        end.synchronize()
        wall = (time.perf_counter() - t0) * 1e3
        ms = start.elapsed_time(end)
        if i == 0:
            y0, loss0 = detached(y), loss.detach()
            out["first_ms"] = ms
        if i >= cfg["warmup"]:
            times.append(ms)
            walls.append(wall)
        del y, loss
    peak = torch.cuda.max_memory_allocated()
    out["ms_median"] = statistics.median(times)
    out["ms_min"] = min(times)
    out["wall_ms_median"] = statistics.median(walls)
    out["runs"] = len(times)
    out["timing"] = "CUDA events around zero_grad + forward + loss + backward"
    out["peak_dev_mb"] = peak / 2**20
    out["step_extra_dev_mb"] = max(0, peak - before) / 2**20
    out["dev_before_mb"] = before / 2**20
    out["peak_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    out["mem_method"] = "torch.cuda.max_memory_allocated after reset_peak_memory_stats"
    return y0, loss0


def selftest_worker(cfg):
    """This script's gradient plumbing in float64, without pigeon's gradients:

    - linearity: the mapped gradients for G3 = a G1 + b G2 equal a grads(G1) + b grads(G2);
    - finite differences: for each pigeon weight, at the entry with the largest gradient and at
      --fd-random random entries, (loss(w + eps) - loss(w - eps)) / 2 eps, where the perturbed
      pigeon weights go through pyg_compare's mapping into a freshly built PyG layer, equals the
      mapped gradient (error relative to the weight's largest gradient entry).
    """
    import torch

    torch.set_num_threads(cfg["threads"])
    torch.set_default_dtype(torch.float64)
    g = pc.load_st(cfg["graph"])
    w = {k: v.double() for k, v in pc.load_st(cfg["weights"]).items()}
    x = pc.load_st(cfg["inputs"])["h"].double()
    model = cfg["model"]
    shapes = {n: tuple(v.shape) for n, v in w.items()}
    gen = torch.Generator().manual_seed(cfg["seed"])
    N, F = x.shape[0], cfg["out_dim"]
    G1 = torch.randn(N, F, generator=gen, dtype=torch.float64)
    G2 = torch.randn(N, F, generator=gen, dtype=torch.float64)
    a_, b_ = 0.7, -1.3
    G3 = a_ * G1 + b_ * G2

    def loss_and_grads(weights, G, backward=True):
        layer, forward, _unpack, _info, hs = build(cfg, g, weights, x, "cpu")
        layer.train()
        layer.zero_grad(set_to_none=True)
        loss = make_loss(model, layer, hs, G, x)(forward())
        if not backward:
            return float(loss), None
        loss.backward()
        return float(loss), pigeon_view(model, layer, hs, shapes)[0]

    _, g1 = loss_and_grads(w, G1)
    _, g2 = loss_and_grads(w, G2)
    _, g3 = loss_and_grads(w, G3)
    lin = {}
    for n in shapes:
        expect = a_ * g1[n] + b_ * g2[n]
        scale = float(expect.abs().max()) or 1.0
        lin[n] = float((g3[n] - expect).abs().max()) / scale
    res = {"status": "ok", "linearity_max_rel_err": max(lin.values()), "linearity": lin}
    rng = torch.Generator().manual_seed(cfg["seed"] + 1)
    fd, eps = [], cfg["eps"]
    for n in shapes:
        flat = g1[n].reshape(-1)
        scale = float(flat.abs().max())
        idxs = [int(flat.abs().argmax())]
        idxs += torch.randint(0, flat.numel(), (cfg["fd_random"],), generator=rng).tolist()
        for i in dict.fromkeys(idxs):
            vals = []
            for sgn in (1, -1):
                wp = dict(w)
                t = w[n].clone()
                t.view(-1)[i] += sgn * eps
                wp[n] = t
                vals.append(loss_and_grads(wp, G1, backward=False)[0])
            num = (vals[0] - vals[1]) / (2 * eps)
            err = abs(num - float(flat[i])) / (scale or 1.0)
            index = [int(j) for j in torch.unravel_index(torch.tensor(i), shapes[n])]
            fd.append({"weight": n, "index": index,
                       "autograd": float(flat[i]), "finite_diff": num, "rel_err": err})
    res["finite_diff"] = fd
    res["fd_max_rel_err"] = max(e["rel_err"] for e in fd)
    res["fd_entries"] = len(fd)
    ok = res["linearity_max_rel_err"] <= cfg["tol"] and res["fd_max_rel_err"] <= cfg["fd_tol"]
    res["status"] = "ok" if ok else "FAIL"
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------------
# The driver.


def write_cotangent(d, N, F, seed):
    """G [N, out_dim] f32, standard normal, seeded; key `out` (pigeon grad's --cotangent)."""
    import numpy as np

    path = d / f"cotangent-s{seed}.safetensors"
    G = np.random.default_rng(seed + COTANGENT_SEED_OFFSET).standard_normal((N, F))
    pc.save_st({"out": G.astype(np.float32)}, path, {"format": "pt"})
    return path


def grad_caps(pigeon):
    p = pc.run_cmd([pigeon, "grad", "--help"])
    return {"grad": p.returncode == 0, "grad_help": p.stdout if p.returncode == 0 else
            (p.stderr.strip().splitlines() or [""])[0]}


def pigeon_grad(pigeon, caps, model, spec, files, cot, a, d):
    """`pigeon grad` on the same weights, inputs and cotangent; the gradients file or why not."""
    if not caps["grad"]:
        return {"status": "n/a", "why": "pigeon has no `grad` command"}
    out = d / f"pigeon-grads-s{a.seed}.safetensors"
    cmd = [pigeon, "grad", pc.MODEL_FILES[model], "--graph", spec, *pc.model_params(model, a),
           "--weights", files["weights"], "--cotangent", cot, "-o", out]
    if "--seed" in caps["grad_help"]:
        cmd += ["--seed", a.seed]
    if "--inputs" in caps["grad_help"]:
        cmd += ["--inputs", files["inputs"]]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    try:
        p = pc.run_cmd(cmd, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "why": f"pigeon grad: no result within {a.timeout} s"}
    if p.returncode != 0:
        return {"status": "error",
                "why": "pigeon grad failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return {"status": "ok", "file": str(out)}


def fmt_ms(v):
    """Three significant digits (at least one decimal)."""
    if v is None:
        return "n/a"
    return f"{v:,.1f}" if v >= 100 else f"{v:.3g}" if v >= 0.01 else f"{v:.2e}"


def fwd_cell(r):
    """The forward check (the row's status also covers the gradient checks)."""
    c = r.get("check")
    if not c:
        return r["status"]
    cell = f"{'ok' if c['ok'] else 'FAIL'} ({c.get('rel_err', float('nan')):.1e})"
    if c.get("rows_without_pyg_output"):
        cell += f", {c['rows_without_pyg_output']} rows not output by PyG"
    return cell


def grad_cell(r):
    gc_ = r.get("grad_check")
    if gc_:
        return f"{'ok' if gc_['ok'] else 'FAIL'} ({gc_['max_rel_err']:.1e})"
    return (r.get("pigeon_grad") or {}).get("status", "n/a")


def print_table(rows):
    cuda = any(r.get("device") == "cuda" for r in rows)
    if cuda:
        first = next((r for r in rows if r.get("gpu")), {})
        print(f"GPU: {first.get('gpu', '?')}; PyG with TF32 off")
    groups = pc.by_pair(rows)
    mem = "dev" if cuda else "rss"
    hdr = ["model", "graph", "PyG layer", "fwd check", "grad check", "PyG step ms",
           "PyG peak MB", "PyG +step MB", "pigeon step ms", "pigeon peak MB" if not cuda
           else "pigeon MB", "PyG / pigeon"]
    lines, ratios, notes = [], [], []
    for (model, graph), group in groups.items():
        best = pc.fastest(group)
        pg = group[0].get("pigeon") or {}
        for r in group:
            ratio = r["ms_median"] / pg["ms"] if r.get("ms_median") and pg.get("ms") else None
            lines.append([model, graph, r["variant"], fwd_cell(r), grad_cell(r),
                          fmt_ms(r.get("ms_median")),
                          pc.fmt(r.get(f"peak_{mem}_mb"), "{:,.0f}"),
                          pc.fmt(r.get("step_extra_dev_mb" if cuda else "step_extra_mb"),
                                 "{:,.0f}"),
                          fmt_ms(pg.get("ms")) if pg.get("ms") else pg.get("status", "n/a"),
                          pc.fmt(pg.get("peak_mb"), "{:,.0f}"),
                          pc.fmt(ratio, "{:.2f}x") + ("*" if r is best and ratio else "")])
        if best and pg.get("ms"):
            ratios.append(best["ms_median"] / pg["ms"])
        elif not best:
            notes.append(f"{model} on {graph}: no PyG time ("
                         + ", ".join(f"{r['variant']} {r['status']}" for r in group) + ")")
    pc.markdown(hdr, lines)
    print("* the fastest PyG variant whose output passed the check (its ratio enters the mean)")
    target = ">= 5x on an H100" if cuda else ">= 3x on the CPU"
    if ratios:
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"geometric mean of fastest PyG step / pigeon step over {len(ratios)} model x "
              f"graph pairs: {gm:.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x; issue "
              f"5 target {target})")
    else:
        print("geometric mean: no model x graph pair has both a PyG and a pigeon step time")
    for n in notes:
        print(n)
    for why in sorted({(r.get("pigeon") or {}).get("why") for r in rows} - {None}):
        print(f"pigeon step column: {why}")
    for why in sorted({(r.get("pigeon_grad") or {}).get("why") for r in rows} - {None}):
        print(f"grad check: n/a ({why})" if "no `grad`" in why else f"grad check: {why}")
    for r in rows:
        if r["status"] not in ("ok", "FAIL"):
            print(f"{r['graph']} {r['variant']}: {r['status']}: {r.get('error', '')}")


def emit(row, a):
    line = json.dumps(row)
    print("JSON " + line, flush=True)
    if a.json_out:
        with open(a.json_out, "a") as f:
            f.write(line + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="rgcn,rgat,hgt", help="comma-separated: rgcn,rgat,hgt")
    ap.add_argument("--variants", default=None,
                    help="comma-separated PyG layers to run (default: all for the models)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--graphs", nargs="+", default=None,
                    help=f"graph specs or aliases (pyg_compare's); default "
                         f"{' '.join(pc.DEFAULT_GRAPHS)}")
    ap.add_argument("--datasets", default=None, help="the datasets folder of the aliases")
    ap.add_argument("--cpu-reference-above", type=int, default=None, metavar="EDGES",
                    help="as in pyg_compare (the forward check's reference back end)")
    ap.add_argument("--copy-gib", type=float, default=1.0,
                    help="--device cuda: pyg_compare's copy-bandwidth probe size (prints the GPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--in-dim", type=int, default=64)
    ap.add_argument("--out-dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--tol", type=float, default=None,
                    help="forward check and gradient check (default 1e-4 f32, 1e-9 f64)")
    ap.add_argument("--pigeon", default=os.environ.get("PIGEON", pc.REPO / "target/release/pigeon"))
    ap.add_argument("--timeout", type=float, default=600, help="seconds per configuration")
    ap.add_argument("--mem-limit-gb", type=float, default=14,
                    help="RLIMIT_DATA of each PyG process (beyond it: `oom`); 0 for none")
    ap.add_argument("--work", default=os.environ.get("TMPDIR", "/tmp") + "/pigeon-pyg-train")
    ap.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--from-json", default=None, help="only print the table of saved JSON lines")
    ap.add_argument("--save-grads", action="store_true",
                    help="also write PyG's gradients under pigeon's names next to the weights")
    ap.add_argument("--grad-selftest", action="store_true",
                    help="instead of timing: check this script's gradients in float64 "
                         "(linearity in G, finite differences through pyg_compare's mapping)")
    ap.add_argument("--fd-random", type=int, default=1,
                    help="--grad-selftest: random entries per weight (plus the largest)")
    ap.add_argument("--fd-eps", type=float, default=1e-6)
    ap.add_argument("--fd-tol", type=float, default=1e-6)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker_main(json.loads(a.worker))
        return 0
    if a.from_json:
        with open(a.from_json) as f:
            print_table([json.loads(line) for line in f if line.strip()])
        return 0
    signal.signal(signal.SIGTERM, pc.stop_workers)
    cuda = a.device == "cuda"
    aliases = pc.graph_aliases(Path(a.datasets).resolve()) if a.datasets else pc.GRAPH_ALIASES
    if a.graphs is None:
        a.graphs = pc.DEFAULT_GRAPHS
    tol = a.tol if a.tol is not None else (1e-4 if a.dtype == "float32" else 1e-9)
    pigeon = Path(a.pigeon)
    if not pigeon.exists():
        log(f"error: no pigeon binary at {pigeon} (build with `cargo build --release` or pass "
            f"--pigeon)")
        return 2
    caps = pc.pigeon_caps(pigeon)
    if not (caps["export"] and caps["save_inputs"]):
        log("error: this pigeon lacks `graph export` or `run --save-inputs`; rebuild it")
        return 2
    caps.update(grad_caps(pigeon))
    if "--train" not in caps["bench_help"]:
        log("note: pigeon bench has no --train: pigeon's step column will be n/a")
    if not caps["grad"]:
        log("note: pigeon has no `grad` command: grad check: n/a")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if cuda:
        gpu = pc.measure_copy(a)  # also fails clearly without a GPU
        if gpu is None:
            return 2
    models = a.models.split(",")
    variants = a.variants.split(",") if a.variants else None
    rows, failed = [], False
    for gname in a.graphs:
        spec = aliases.get(gname, gname)
        gfile = work / pc.slug(gname) / "graph.safetensors"
        gfile.parent.mkdir(parents=True, exist_ok=True)
        p = pc.run_cmd([pigeon, "graph", "export", spec, "-o", gfile])
        if p.returncode != 0:
            log(f"error: cannot export {spec}: {p.stderr.strip()}")
            failed = True
            continue
        meta = pc.graph_meta(gfile)
        log(f"{gname}: {meta}")
        for model in models:
            files = pc.prepare(pigeon, model, gname, spec, gfile, meta, a, work)
            d = Path(files["weights"]).parent
            cot = write_cotangent(d, meta["nodes"], a.out_dim, a.seed)
            base = dict(model=model, graph=str(gfile), threads=a.threads, runs=a.runs,
                        warmup=a.warmup, heads=a.heads, in_dim=a.in_dim, out_dim=a.out_dim,
                        relations=meta["relations"], dtype=a.dtype, tol=tol,
                        mem_limit_gb=a.mem_limit_gb, cotangent=str(cot), seed=a.seed, **files)
            if a.grad_selftest:
                for variant in pc.VARIANTS[model]:
                    if variants and variant not in variants:
                        continue
                    cfg = dict(base, kind="selftest", variant=variant, tol=1e-9,
                               fd_tol=a.fd_tol, eps=a.fd_eps, fd_random=a.fd_random)
                    res = run_worker(cfg, a.timeout)
                    row = {"graph": gname, "model": model, "variant": variant, **res}
                    emit(row, a)
                    log(f"  selftest {model} {gname} {variant}: {res.get('status')} "
                        f"linearity {res.get('linearity_max_rel_err', float('nan')):.1e}, "
                        f"finite differences {res.get('fd_max_rel_err', float('nan')):.1e} "
                        f"over {res.get('fd_entries', 0)} entries {res.get('error', '')}")
                    failed = failed or res.get("status") != "ok"
                    rows.append(row)
                continue
            (work / "pigeon-train").mkdir(exist_ok=True)
            pg = pigeon_train_bench(pigeon, caps, model, spec, files, a, work / "pigeon-train")
            pgr = pigeon_grad(pigeon, caps, model, spec, files, cot, a, d)
            for variant in pc.VARIANTS[model]:
                if variants and variant not in variants:
                    continue
                cfg = dict(base, variant=variant)
                if cuda:
                    cfg["device"] = "cuda"
                if pgr.get("file"):
                    cfg["pigeon_grads"] = pgr["file"]
                if a.save_grads:
                    cfg["save_grads"] = str(d / f"pyg-grads-{variant}-s{a.seed}.safetensors")
                res = run_worker(cfg, a.timeout)
                row = {"graph": gname, "spec": spec, **meta, "model": model, "variant": variant,
                       "in_dim": a.in_dim, "out_dim": a.out_dim, "heads": a.heads,
                       "dtype": a.dtype, "threads_requested": a.threads, "warmup": a.warmup,
                       "reference_s": files["reference_s"], **res,
                       "pigeon": {k: v for k, v in pg.items() if k != "raw"},
                       "pigeon_grad": pgr}
                if cuda:
                    row.update(device="cuda", gpu=gpu.get("gpu"))
                if pg.get("raw") is not None:
                    row["pigeon_raw"] = pg["raw"]
                if row["status"] == "FAIL":
                    failed = True
                    bad = {n: p for n, p in ((row.get("grad_check") or {})
                                             .get("per_weight") or {}).items() if not p["ok"]}
                    log(f"FAIL: {gname} {model} {variant}: forward check "
                        f"{json.dumps(row.get('check'))}; mapping round trip error "
                        f"{row.get('mapping_roundtrip_err')}; gradients that differ from "
                        f"pigeon's: {json.dumps(bad) if bad else 'none'}; "
                        f"{row.get('error', '')}")
                emit(row, a)
                rows.append(row)
    print()
    if a.grad_selftest:
        pc.markdown(["model", "graph", "PyG layer", "status", "linearity rel err",
                     "finite diff rel err (entries)"],
                    [[r["model"], r["graph"], r["variant"], r["status"],
                      pc.fmt(r.get("linearity_max_rel_err"), "{:.1e}"),
                      f"{pc.fmt(r.get('fd_max_rel_err'), '{:.1e}')} ({r.get('fd_entries', 0)})"]
                     for r in rows])
    else:
        print_table(rows)
    if failed:
        print("\nFAILED: see the FAIL lines above (forward check, gradient check or self-test)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
