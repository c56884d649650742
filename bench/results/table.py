"""Prints the README's result tables from the JSON lines in this folder (PyG rows written by
`pyg_compare.py --json-out`, pigeon rows by `pigeon bench --json`, one per model, graph, threads)."""
from pathlib import Path

HERE = Path(__file__).resolve().parent
import json, sys
pg = {}
for l in open(HERE / 'pigeon.jsonl'):
    d = json.loads(l); pg[(d['graph'], d['model'], d['threads'])] = d
def f(v, s="{:,.0f}"):
    return "n/a" if v is None else s.format(v)
for fn, T in ((HERE / 'pyg-1thread.jsonl', 1), (HERE / 'pyg-2threads.jsonl', 2)):
    rows = [json.loads(l) for l in open(fn)]
    rows = [r for r in rows if r['graph'] != 'mixed']
    print(f"\n{T} thread{'s' if T>1 else ''}\n")
    print("| graph | model | PyG layer | check (rel. err.) | PyG ms (median / min) | PyG CPU ms | pigeon ms | PyG / pigeon | PyG peak MB (+fwd) | pigeon peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = pg.get((r['graph'], r['model'], T), {})
        st = r['status']
        chk = f"{st} ({r['check']['rel_err']:.1e})" if st in ('ok','FAIL') else st
        ratio = r['ms_median'] / p['ms'] if r.get('ms_median') and p.get('ms') else None
        print(f"| {r['graph']} | {r['model']} | {r['variant']} | {chk} | {f(r.get('ms_median'))} / {f(r.get('ms_min'))} | {f(r.get('cpu_ms_median'))} | {f(p.get('ms'), '{:,.1f}')} | {f(ratio, '{:,.0f}x')} | {f(r.get('peak_rss_mb'))} (+{f(r.get('fwd_extra_mb'))}) | {f(p.get('peak_mb'))} |")
    la = [r.get('loadavg_before') for r in rows if r.get('loadavg_before')]
    print(f"\nload average during the PyG runs: {min(la):.1f} to {max(la):.1f}")
