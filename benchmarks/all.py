"""Every benchmark's headline ratio and growth exponent in one run: one JSON file and one Markdown table.

Each ratio is measured against its baseline in the same run (issue 24; the README's performance table):

* CoMPILE/GraIL subgraph extraction at 1M triples, 1,000 queries vs the lean per-query BFS, and the exponent of
  time in graph size (``compile_kg.py --scaling``);
* DRE's evaluation on WN18 vs PyKEEN's ``RankBasedEvaluator`` on the base model (``domain_kge.py --eval``);
* CoCoOp's batched step (chunks + shared prompt prefix) vs the per-image loop: peak memory and images/s
  (``cocoop.py``);
* DiffPool on PROTEINS, one epoch + evaluation: peak memory size-bucketed vs padded to the largest graph, and
  throughput vs a plain PyG-example DiffPool (``diffpool.py``);
* Max-of-4 brute force vs a batched forward pass (TransformerLens 3.x when importable, ``maxk_proofs.py``);
* DEMI vs InfoNCE, LDS factored vs dense autograd, RAS vs its VGG backbone, prompts vs fine-tuning, batched vs
  per-image beam search, coarse-to-fine vs dense extraction;

and every benchmark's growth record (time at three sizes along its cost driver, fitted exponent).

    python benchmarks/all.py --json --out perf.json      # full: <= ~10 min on 2 idle cores; also perf.md
    python benchmarks/all.py --quick                     # seconds: every benchmark at toy sizes, in one process
    python benchmarks/all.py --only compile_kg,cocoop    # a subset

In the full run each benchmark runs in its own process (its own threads and peak memory), one after the other,
with this checkout's ``src`` first on ``PYTHONPATH``; the machine facts (CPU model, cores, load, date, git commit)
are recorded before and after. The Max-of-4 baseline is TransformerLens's ``HookedTransformer`` when
``transformer_lens`` 3.x is importable (the README's baseline; it is not a dependency of the project: put an
installation on ``PYTHONPATH``), else the model's own batched forward pass; its row names which one ran.
``--quick`` runs everything in this process at toy sizes: its numbers mean nothing, it checks that the scripts
still run (see tests/core/test_benchmarks.py). Exits 1 when a benchmark failed to run (a missed target is a
result, not a failure: it is reported in the table and under ``done_when``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import growth

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"  # the code of this checkout is what gets measured (its commit is in the report)


@dataclass(frozen=True)
class Job:
    """One invocation of a benchmark script: its full and quick arguments and how its JSON becomes table rows."""

    name: str
    script: str
    full: list[str]
    quick: list[str]
    rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

    def command(self, quick: bool) -> str:
        return " ".join(["python", f"benchmarks/{self.script}", *(self.quick if quick else self.full)])


def _of(lines: list[dict[str, Any]], measure: str, **match: Any) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("measure") == measure and all(x.get(k) == v for k, v in match.items())]


def _x(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _row(what: str, ratio: str, baseline: str, sizes: str, **values: Any) -> dict[str, Any]:
    return {"what": what, "ratio": ratio, "baseline": baseline, "sizes": sizes, "values": values}


def compile_kg_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scaling = _of(lines, "scaling")
    kinds = list(dict.fromkeys(x["kind"] for x in scaling))
    largest = {k: max((x for x in scaling if x["kind"] == k), key=lambda x: x["graph_triples"]) for k in kinds}
    first = largest[kinds[0]]
    sizes = sorted({x["graph_triples"] for x in scaling})
    ratio = ", ".join(f"{_x(largest[k]['ratio'])} faster ({k})" for k in kinds)
    exps = " / ".join(f"{largest[k]['batched_exponent']:.3f}" for k in kinds)
    base_exps = " / ".join(f"{largest[k]['baseline_exponent']:.3f}" for k in kinds)
    return [_row(f"CoMPILE/GraIL subgraph extraction at {first['graph_triples']:,} triples, {first['queries']:,} "
                 f"queries ({first['hops']} hops, batch {first['batch']})",
                 f"{ratio}; time exponent in graph size {exps}",
                 f"lean per-query BFS (`PerTripleExtractor`; exponent {base_exps})",
                 f"graphs of {', '.join(f'{s:,}' for s in sizes)} triples (disjoint copies of the family KG), "
                 "CPU time, best of the repeats",
                 **{k: {"ratio": largest[k]["ratio"], "batched_s": largest[k]["batched_s"],
                        "baseline_s": largest[k]["baseline_s"], "batched_exponent": largest[k]["batched_exponent"],
                        "baseline_exponent": largest[k]["baseline_exponent"]} for k in kinds})]


def compile_kg_bigru_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = max(_of(lines, "bigru"), key=lambda x: x["longest"])
    return [_row(f"CoMPILE BiGRU readout, one training pass (forward + backward), {r['subgraphs']} subgraphs of up to "
                 f"{r['longest']:,} nodes",
                 f"{_x(r['ratio'])} faster ({r['ours_s']:.3f} s vs {r['torch_s']:.3f} s), "
                 + ("bit-identical" if r["bit_identical"] else "NOT bit-identical"),
                 "`torch.nn.GRU` on the packed batch (its CPU backward is quadratic in the longest subgraph)",
                 f"{r['nodes']:,} nodes (one fb237_v1 training batch), width {r['width']}, {r['threads']} thread",
                 speedup=r["ratio"], ours_s=r["ours_s"], torch_s=r["torch_s"], bit_identical=r["bit_identical"])]


def domain_kge_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = _of(lines, "ratio")[-1]
    return [_row(f"DRE evaluation on {r['dataset']} ({r['test_triples']:,} test triples, 3 variants x filtered + raw)",
                 f"{_x(r['ratio_cpu'])} the CPU time ({r['dre_cpu_s']:.2f} s vs {r['pykeen_cpu_s']:.2f} s)",
                 "PyKEEN `RankBasedEvaluator` on the base model (filtered)",
                 f"{r['entities']:,} entities, TransE dim {r['dim']}, {r['threads']} thread(s)",
                 ratio_cpu=r["ratio_cpu"], dre_cpu_s=r["dre_cpu_s"], pykeen_cpu_s=r["pykeen_cpu_s"])]


def cocoop_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    modes = _of(lines, "mode")
    r = next(x for x in modes if x.get("headline"))  # benchmarks/cocoop.py names its headline mode
    ref = next(x for x in modes if "reference" in x["mode"])
    return [_row(f"CoCoOp batched step ({r['mode']}), batch {r['batch']}",
                 f"{r['memory_ratio']:.2f}x the peak memory ({r['peak_mb']:.0f} MB vs {ref['peak_mb']:.0f} MB) at "
                 f"{_x(r['speedup'])} the images/s", "the per-image loop over full prompts (reference implementation)",
                 f"batch {r['batch']}, {r['device']}, {r.get('threads', '?')} thread(s), each mode in a fresh process",
                 memory_ratio=r["memory_ratio"], speedup=r["speedup"])]


def diffpool_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    memory = {x["mode"]: x for x in _of(lines, "memory")}
    if memory:
        before, after = memory["before"], memory.get("bucketed", memory.get("after"))
        ratio = after["peak_rss_mb"] / before["peak_rss_mb"]
        rows.append(_row(f"DiffPool on {before['dataset']}, one epoch + evaluation (size-bucketed batches)",
                         f"{ratio:.2f}x the peak memory ({after['peak_rss_mb']:,.0f} MB vs "
                         f"{before['peak_rss_mb']:,.0f} MB), {after['cpu_s'] / before['cpu_s']:.2f}x the CPU time",
                         "every graph padded to the largest",
                         f"{before['graphs']:,} graphs up to {before['largest_graph']} nodes, batch "
                         f"{before.get('batch_size', '?')}, 1 thread",
                         memory_ratio=ratio, cpu_ratio=after["cpu_s"] / before["cpu_s"]))
    for r in _of(lines, "throughput_ratio"):
        rows.append(_row(f"DiffPool training throughput on {r['dataset']}",
                         f"{_x(r['throughput_ratio'])} the graphs/s, {r['memory_ratio']:.2f}x the saved activations",
                         r["baseline"], f"batch {r.get('batch_size', '?')}, padded to the largest graph, 1 thread",
                         throughput_ratio=r["throughput_ratio"], memory_ratio=r["memory_ratio"]))
    return rows


def maxk_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = _of(lines, "ratio")[-1]
    return [_row(f"Max-of-{r['n_ctx']} brute-force accuracy ({r['inputs']:,} inputs, d_vocab {r['d_vocab']})",
                 f"{_x(r['throughput_ratio'])} faster ({r['brute_force_s']:.2f} s vs "
                 f"~{r['baseline_all_inputs_s']:.1f} s for all inputs)", f"{r['baseline']}, same weights, float64",
                 f"baseline timed on {r['baseline_inputs']:,} inputs and extrapolated; {r['threads']} thread(s)",
                 throughput_ratio=r["throughput_ratio"])]


def demi_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for critic in ("separable", "concat"):
        demi = [x for x in _of(lines, "cost_vs_infonce", critic=critic) if x["estimator"] == "demi"]
        if demi:
            rows.append(_row(f"DEMI training step, k = {' / '.join(str(x['k']) for x in demi)} sub-views, {critic} "
                             f"critic", " / ".join(f"{_x(x['cost_vs_infonce'])} the time" for x in demi),
                             "InfoNCE with the same critic (target <= 1.5 k)", f"batch {demi[0]['batch']}, 1 thread",
                             **{f"k{x['k']}": x["cost_vs_infonce"] for x in demi}))
    return rows


def lds_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = _of(lines, "ratio")[-1]
    memory = 1 / r["memory_ratio_dense_vs_factored"] if r["memory_ratio_dense_vs_factored"] else float("nan")
    return [_row(f"LDS outer step (tau = {r['tau']}) on {r['source']}",
                 f"{_x(r['speedup_factored_vs_dense'])} faster, {memory:.2f}x the peak memory (factored engine)",
                 "plain autograd on dense samples", f"{r['threads']} thread(s), each engine in a fresh process",
                 speedup=r["speedup_factored_vs_dense"], memory_ratio=memory)]


def ras_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rs = _of(lines, "ratio")
    widths = " / ".join(f"{x['width']:g}" for x in rs)
    return [_row(f"RAS inference at {rs[0]['size']}x{rs[0]['size']}, width {widths}",
                 " / ".join(f"{_x(x['ras_vs_vgg'])}" for x in rs) + " the VGG-16 time; reverse attention "
                 + " / ".join(f"{_x(x['ras_vs_no_ra'])}" for x in rs) + " the time without it",
                 "the VGG-16 backbone alone; RAS without reverse attention", f"batch 1, {rs[0]['threads']} thread(s)",
                 **{f"width_{x['width']:g}": {"ras_vs_vgg": x["ras_vs_vgg"], "ras_vs_no_ra": x["ras_vs_no_ra"]}
                    for x in rs})]


def missing_prompts_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rs = {x["method"]: x for x in _of(lines, "ratio")}
    r = rs["prompt_input_accum"]
    return [_row(f"missing-aware prompts (input-level, accumulate): training step, batch {r['batch']}",
                 f"{_x(r['train_vs_finetune'])} the time, {r['optimizer_state_vs_finetune']:.2f}x the optimizer "
                 "state", "full fine-tuning of the same mini ViLT", f"batch {r['batch']}, {r['threads']} thread(s)",
                 train_vs_finetune=r["train_vs_finetune"], state_vs_finetune=r["optimizer_state_vs_finetune"])]


def orderfree_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = _of(lines, "ratio")[-1]
    return [_row(f"order-free decoding: batched beam search (width {r['beam_width']}), {r['images']} images",
                 f"{_x(r['speedup_batched_vs_per_image'])} the images/s (same label sets)",
                 "one-image-at-a-time beam search", f"{r['images']} images, {r['threads']} thread(s)",
                 speedup=r["speedup_batched_vs_per_image"])]


def imnet_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rs = [x for x in _of(lines, "ratio") if x["field"].startswith("IM-AE")] or _of(lines, "ratio")
    speedup = sum(x["speedup"] for x in rs) / len(rs)
    evals = sum(x["eval_ratio"] for x in rs) / len(rs)
    r = rs[0]
    return [_row(f"IM-NET coarse-to-fine extraction, {r['coarse']}^3 -> {r['res']}^3 cells, {len(rs)} decoded shape(s)",
                 f"{_x(speedup)} faster, {evals:.3f}x the decoder evaluations (IoU >= "
                 f"{min(x['iou'] for x in rs):.4f})", "dense evaluation of every grid vertex",
                 f"{r['threads']} thread(s)", speedup=speedup, eval_ratio=evals)]


def no_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return []


JOBS = [
    Job("compile_kg", "compile_kg.py",
        ["--scaling", "--json", "--sizes", "100000", "300000", "1000000", "--queries", "1000", "--repeats", "3"],
        ["--scaling", "--json", "--sizes", "3000", "6000", "12000", "--queries", "20", "--repeats", "1"],
        compile_kg_rows),
    Job("compile_kg_bigru", "compile_kg.py", ["--bigru", "--repeats", "3"], ["--bigru", "--repeats", "1"],
        compile_kg_bigru_rows),
    # the evaluations' cost does not depend on training: 1 epoch and 20 domain steps keep the setup short
    Job("domain_kge", "domain_kge.py", ["--eval", "--json", "--test-triples", "200", "--epochs", "1",
                                        "--domain-epochs", "20"],
        ["--eval", "--json", "--data", "nations", "--epochs", "1", "--domain-epochs", "1", "--test-triples", "8",
         "--dim", "8"],
        domain_kge_rows),
    # best of 3 single steps per mode: the per-image loop's 64 text-encoder passes make each step long; 1 thread,
    # as the other single-process benchmarks (2 threads on 2 shared cores stalled every small op of the loop)
    Job("cocoop", "cocoop.py", ["--json", "--steps", "1", "--repeats", "3", "--threads", "1"],
        ["--json", "--batch", "4", "--classes", "2", "--width", "8", "--layers", "1", "--chunk", "2", "--steps", "1",
         "--repeats", "1", "--image-size", "8"], cocoop_rows),
    Job("diffpool", "diffpool.py", ["--json"],
        ["--json", "--steps", "1", "--batch-size", "4", "--synthetic", "12"], diffpool_rows),
    Job("maxk_proofs", "maxk_proofs.py", ["--json"],
        ["--json", "--d-vocab", "8", "--batch", "1024", "--growth-vocab", "4,6,8"], maxk_rows),
    Job("demi", "demi.py", ["--json", "--steps", "30"],
        ["--json", "--steps", "1", "--batch", "8", "--growth-batches", "4,8,16", "--growth-steps", "1"], demi_rows),
    Job("lds", "lds.py", ["--json"],
        ["--json", "--nodes", "64", "--tau", "1", "--repeats", "1", "--threads", "1"], lds_rows),
    Job("ras", "ras.py", ["--json"], ["--json", "--width", "0.125", "--size", "32", "--repeats", "1"], ras_rows),
    Job("missing_prompts", "missing_prompts.py", ["--json"],
        ["--json", "--hidden", "16", "--layers", "2", "--batch", "4", "--steps", "1"], missing_prompts_rows),
    Job("orderfree", "orderfree.py", ["--json"],
        ["--json", "--images", "4", "--fit-steps", "1", "--repeats", "1", "--hidden", "16"], orderfree_rows),
    Job("orderfree_scaling", "orderfree.py", ["--json", "--scaling", "64,256,1024"],
        ["--json", "--scaling", "2,4,8", "--fit-steps", "1", "--hidden", "16"], no_rows),
    Job("imnet", "imnet.py", ["--json"], ["--json", "--res", "8", "--coarse", "4", "--shapes", "1", "--steps", "1"],
        imnet_rows),
    Job("imnet_scaling", "imnet.py", ["--json", "--scaling", "32,64,128"],
        ["--json", "--scaling", "4,8,16", "--steps", "1"], no_rows),
]


def run_job(job: Job, quick: bool) -> dict[str, Any]:
    """Run one job; its JSON lines, table rows, wall and CPU seconds, and the error if it failed to run."""
    argv = job.quick if quick else job.full
    start, cpu = time.perf_counter(), _cpu_seconds()
    result: dict[str, Any] = {"name": job.name, "command": job.command(quick)}
    try:
        if quick:
            lines = growth.json_lines(growth.call_main(HERE / job.script, argv))
        else:
            path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
            done = subprocess.run([sys.executable, str(HERE / job.script), *argv], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": path})
            lines = growth.json_lines(done.stdout)
            result["exit_code"] = done.returncode  # 1 may be a missed target; no JSON at all is a failure
            if not lines:
                raise RuntimeError(f"no JSON output (exit {done.returncode}):\n{done.stderr[-3000:]}")
        result["lines"] = lines
        result["rows"] = [{**row, "name": job.name, "script": job.command(quick)} for row in job.rows(lines)]
        result["growth"] = [{**g, "name": job.name} for g in lines if g.get("measure") == "growth"]
    except Exception as error:  # one benchmark's failure must not lose the others' numbers
        result["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}"
    result["wall_s"] = round(time.perf_counter() - start, 2)
    result["cpu_s"] = round(_cpu_seconds() - cpu, 2)
    return result


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def done_when(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 24's measurable "Done when" items, checked on this run's numbers."""
    checks = []
    kg = next(iter(results.get("compile_kg", {}).get("rows", [])), None)
    if kg:
        for kind, v in kg["values"].items():
            checks.append({"item": f"extraction at the largest graph >= 3x faster than per-query BFS ({kind})",
                           "value": v["ratio"], "met": v["ratio"] >= 3})
            checks.append({"item": f"extraction time exponent in graph size < 0.2 ({kind})",
                           "value": v["batched_exponent"], "met": v["batched_exponent"] < 0.2})
    dre = next(iter(results.get("domain_kge", {}).get("rows", [])), None)
    if dre:
        value = dre["values"]["ratio_cpu"]
        checks.append({"item": "DRE evaluation <= 2x PyKEEN's", "value": value, "met": value <= 2})
    coop = next(iter(results.get("cocoop", {}).get("rows", [])), None)
    if coop:
        mem, speed = coop["values"]["memory_ratio"], coop["values"]["speedup"]
        checks.append({"item": "CoCoOp <= 0.5x the loop's peak memory", "value": mem, "met": mem <= 0.5})
        checks.append({"item": "CoCoOp >= 2x the loop's images/s", "value": speed, "met": speed >= 2})
    return checks


def markdown(report: dict[str, Any]) -> str:
    """The README's performance table (what | ratio | baseline | sizes | script), the growth table and the facts."""
    m = report["machine"]
    lines = [
        f"Measured {m['date_utc']} at commit {m['git_commit']} by `{report['command']}` "
        f"({report['wall_s']:.0f} s wall, {report['cpu_s']:.0f} CPU-s); {m['cpu_model']} (family/model "
        f"{m['cpu_family_model']}), {m['physical_cores']} cores, {m['logical_cpus']} logical CPUs, torch "
        f"{m['torch']} ({m['torch_threads']} threads by default), Python {m['python']}; load average "
        f"{', '.join(map(str, m['load_average_1m_5m_15m'] or []))} before the run, "
        f"{', '.join(map(str, report['machine_after']['load_average_1m_5m_15m'] or []))} after.",
        "",
        "| what | ratio | baseline | sizes | script |",
        "|---|---|---|---|---|",
    ]
    for job in report["jobs"]:
        for row in job.get("rows", []):
            lines.append(f"| {row['what']} | {row['ratio']} | {row['baseline']} | {row['sizes']} | "
                         f"`{row['script'].removeprefix('python ')}` |")
        if "error" in job:
            lines.append(f"| {job['name']} | FAILED: {job['error'].splitlines()[0]} | | | `{job['command']}` |")
    lines += ["", "How the main cost grows (time ~ size^k, least squares in log-log):", "",
              "| benchmark | what | size axis | sizes | time | k | expected |", "|---|---|---|---|---|---|---|"]
    for job in report["jobs"]:
        for g in job.get("growth", []):
            times = ", ".join(f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s" for t in g["times_s"])
            sizes = ", ".join(f"{s:,}" if isinstance(s, int) else f"{s:g}" for s in g["sizes"])
            lines.append(f"| {g['name']} | {g['what']} | {g['axis']} | {sizes} | {times} ({g['clock']}) | "
                         f"{g['exponent']:.2f} | {g.get('expected_exponent', '')} |")
    if report["done_when"]:
        lines += ["", "Issue 24, done when:", ""]
        for c in report["done_when"]:
            lines.append(f"- [{'x' if c['met'] else ' '}] {c['item']}: {c['value']:.3g}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, all in this process (seconds)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON instead of Markdown")
    parser.add_argument("--out", default=None, help="write the JSON report here and the Markdown next to it (.md)")
    parser.add_argument("--only", default="", help="comma-separated job names: " + ", ".join(j.name for j in JOBS))
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    unknown = only - {j.name for j in JOBS}
    if unknown:
        parser.error(f"--only: unknown job(s) {', '.join(sorted(unknown))}")
    growth.IN_PROCESS = args.quick
    sys.path.insert(0, str(SRC))
    report: dict[str, Any] = {"command": "python benchmarks/all.py " + " ".join(sys.argv[1:] if argv is None else argv),
                              "quick": args.quick, "machine": growth.machine_facts(), "jobs": []}
    start, cpu = time.perf_counter(), _cpu_seconds()
    for job in JOBS:
        if only and job.name not in only:
            continue
        result = run_job(job, args.quick)
        report["jobs"].append(result)
        status = "FAILED" if "error" in result else "ok"
        print(f"[all] {job.name}: {status} in {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} CPU-s",
              file=sys.stderr, flush=True)
    report["wall_s"], report["cpu_s"] = round(time.perf_counter() - start, 1), round(_cpu_seconds() - cpu, 1)
    report["machine_after"] = growth.machine_facts()
    report["done_when"] = done_when({r["name"]: r for r in report["jobs"]})
    text = markdown(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        out.with_suffix(".md").write_text(text)
    print(json.dumps(report, indent=1) if args.json else text)
    return 1 if any("error" in r for r in report["jobs"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
