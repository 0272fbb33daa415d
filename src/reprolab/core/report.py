"""Markdown reports: one per run (``report.md``) and one aggregated over methods and seeds."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reprolab.core.claims import claim_verdict, verdict_totals

__all__ = [
    "format_number",
    "markdown_table",
    "mean_std",
    "render_reproduce_report",
    "render_run_report",
    "totals_text",
]


def format_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format_number(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _ours_cell(claim: Mapping[str, Any]) -> Any:
    """The claim's metric: mean over units, with its two-sided 95 % interval when there are several units."""
    if claim.get("ours_low") is None or claim.get("ours_high") is None or claim.get("ours") is None:
        return claim.get("ours")
    return f"{format_number(claim['ours'])} [{format_number(claim['ours_low'])}, {format_number(claim['ours_high'])}]"


def _verdict_cell(claim: Mapping[str, Any]) -> str:
    cell = claim_verdict(claim).upper()
    needed = claim.get("units_needed")
    return f"{cell} (needs n ≥ {needed})" if needed else cell


def totals_text(claims: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]]) -> str:
    """One sentence of totals: the paper's empirical claims, then structural checks and our extensions apart."""
    totals = verdict_totals(claims, skipped)
    parts = []
    labels = (("empirical", "Paper's empirical claims"), ("structural", "Checks"), ("extension", "Extensions"))
    for kind, label in labels:
        counts = totals[kind]
        if sum(counts.values()) == 0:
            continue
        shown = ", ".join(f"{counts[v]} {v}" for v in ("pass", "fail", "inconclusive", "not evaluated") if counts[v])
        underpowered = sum(1 for c in claims if c.get("kind", "empirical") == kind and c.get("units_needed"))
        if underpowered:
            shown += f" ({underpowered} of the inconclusive need more units than this preset runs)"
        parts.append(f"{label}: {shown}.")
    return " ".join(parts) or "No claims."


def totals_cell(claims: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]]) -> str:
    """Compact totals for a table cell: ``empirical p/f/i/ne · checks p/n · ext p/f/i``."""
    totals = verdict_totals(claims, skipped)
    emp, chk, ext = totals["empirical"], totals["structural"], totals["extension"]
    cell = f"{emp['pass']}/{emp['fail']}/{emp['inconclusive']}/{emp['not evaluated']}"
    checks = chk["pass"] + chk["fail"]
    if checks:
        cell += f" · checks {chk['pass']}/{checks}"
    if sum(ext.values()):
        cell += f" · ext {ext['pass']}/{ext['fail']}/{ext['inconclusive']}"
    return cell


def _cpu_text(results: Mapping[str, Any]) -> str:
    return f" ({results['cpu_s']:.1f} s of CPU)" if results.get("cpu_s") is not None else ""


def paper_cell(claim: Mapping[str, Any]) -> Any:
    """A claim's paper number for a table, with "(recalled)" or "(read)" when its source is stated."""
    paper, source = claim.get("paper"), claim.get("paper_source")
    if paper is None or not source:
        return paper
    return f"{format_number(paper)} ({source})"


def paper_metric_cell(entry: Mapping[str, Any], name: str) -> Any:
    """The paper's number for metric ``name`` of a run's results or a summary's method entry, with "(recalled)" or
    "(read)" when the method states its source."""
    return paper_cell(
        {"paper": entry.get("paper_metrics", {}).get(name), "paper_source": entry.get("paper_sources", {}).get(name)}
    )


def _claims_table(claims: Sequence[Mapping[str, Any]], *, detail: bool = True) -> str:
    rows = [
        [
            c["id"],
            c.get("kind", "empirical"),
            _verdict_cell(c),
            _ours_cell(c),
            paper_cell(c),
            c.get("n"),
            c["description"],
            *([c["detail"]] if detail else []),
        ]
        for c in claims
    ]
    columns = ["claim", "kind", "verdict", "ours (mean [95% interval])", "paper", "n", "statement"]
    return markdown_table([*columns, *(["detail"] if detail else [])], rows)


def _not_evaluated_lines(skipped: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"- not evaluated ({s.get('kind', 'empirical')}): `{s['id']}` — {s['description']} ({s['reason']})"
        for s in skipped
    ]


def render_run_report(results: Mapping[str, Any], run_dir: str | Path) -> str:
    """The report of one run, built only from ``results.json`` and the figures in ``run_dir``."""
    run_dir = Path(run_dir)
    paper = results.get("paper", {})
    lines = [
        f"# {results['method']} — preset `{results['preset']}`, seed {results['seed']}",
        "",
        f"Paper: {paper.get('citation', '')}",
        "",
        _settings_line(results.get("preset"), results.get("overrides"), results.get("perturb")),
        "",
        f"Runtime: {results['runtime_s']:.1f} s{_cpu_text(results)} on {results.get('device', 'cpu')}; "
        f"reprolab {results['versions'].get('reprolab')}, torch {results['versions'].get('torch')}, "
        f"python {results['versions'].get('python')}.",
        "",
        "## Claims",
        "",
    ]
    claims = results.get("claims", [])
    skipped = results.get("claims_not_evaluated", [])
    lines += [totals_text(claims, skipped), "", _RULE_TEXT, ""]
    if claims:
        lines += [_claims_table(claims), ""]
    lines += _not_evaluated_lines(skipped)
    lines += ["", "## Metrics", ""]
    metrics = results.get("metrics", {})
    metric_rows = [[name, value, paper_metric_cell(results, name)] for name, value in metrics.items()]
    lines += [markdown_table(["metric", "ours", "paper"], metric_rows), ""]
    for table in results.get("tables", []):
        lines += [f"### {table['title']}", "", markdown_table(table["columns"], table["rows"]), ""]
    notes = results.get("notes", [])
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    figures = sorted((run_dir / "figures").glob("*.png"))
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{fig.stem}](figures/{fig.name})" for fig in figures]
        lines.append("")
    lines += ["## Config", "", "```yaml", *_yaml_lines(results.get("config", {})), "```", ""]
    return "\n".join(lines)


def _settings_line(preset: Any, overrides: Mapping[str, Any] | None, perturb: Any = None) -> str:
    """The preset and every override, so a report never hides what changed from the preset."""
    text = f"Settings: preset `{preset}`"
    text += (", overrides " + ", ".join(f"`{k}={v}`" for k, v in overrides.items())) if overrides else ", no overrides"
    return text + (f", initial weights perturbed by {perturb:g} (relative)." if perturb else ".")


_RULE_TEXT = (
    "Empirical claims are decided over units (seeds, or folds x seeds): PASS when the one-sided 95% Student-t "
    "lower bound of the mean difference clears the margin, FAIL when the upper bound falls short, otherwise "
    "INCONCLUSIVE; one unit is always inconclusive. A claim marked (needs n ≥ N) is INCONCLUSIVE because its measured "
    "noise at this preset needs N units for a verdict that a rerun repeats (the detail gives what the rule alone "
    "says). Checks are structural facts, the same on every unit."
)


def _yaml_lines(config: Mapping[str, Any]) -> list[str]:
    import yaml

    return yaml.safe_dump(dict(config), sort_keys=False).rstrip().splitlines()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of a non-empty sequence."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def render_reproduce_report(summary: Mapping[str, Any], out_dir: str | Path) -> str:
    """The aggregated report: per method, metrics as mean ± std over seeds beside the paper's numbers."""
    out_dir = Path(out_dir)
    lines = [
        f"# reprolab reproduce — preset `{summary['preset']}`, seeds "
        + ("as each method states" if summary.get("seeds") is None else str(summary["seeds"])),
        "",
        _settings_line(summary.get("preset"), summary.get("overrides"), summary.get("perturb")),
        "",
        _grand_totals(summary),
        "",
        _RULE_TEXT,
        "",
        _overview_table(summary),
        "",
    ]
    for method in summary["methods"]:
        lines += [f"## {method['method']}", ""]
        if method.get("error"):
            lines += [f"**Error:** {method['error']}", ""]
            continue
        lines += [
            f"Paper: {method['citation']}",
            "",
            f"Runtime: {method['runtime_s']:.1f} s in total over {len(method['run_dirs'])} seed(s).",
            "",
            totals_text(method["claims"], method.get("claims_not_evaluated", [])),
            "",
        ]
        shown = _headline_metrics(method)
        rows = [[name, _pm(method["metrics"][name]), paper_metric_cell(method, name)] for name in shown]
        lines += [markdown_table(["metric", "ours (mean ± std)", "paper"], rows), ""]
        if len(shown) < len(method["metrics"]):
            lines += [f"Headline metrics only; all {len(method['metrics'])} are in each run's report.md.", ""]
        if method["claims"]:
            lines += [_claims_table(method["claims"]), ""]
        lines += _not_evaluated_lines(method.get("claims_not_evaluated", []))
        for fig in method.get("figures", []):
            # links relative to the report's own folder, whatever folder the command ran from
            rel = os.path.relpath(Path(fig).resolve(), out_dir.resolve())
            lines.append(f"![{Path(fig).stem}]({Path(rel).as_posix()})")
        lines.append("")
    return "\n".join(lines)


def _headline_metrics(method: Mapping[str, Any]) -> list[str]:
    """The method's ``summary_metrics`` and those with a paper number, in that order; all when none are named."""
    metrics = method["metrics"]
    named = [*method.get("summary_metrics", []), *method["paper_metrics"]]
    shown = [name for name in dict.fromkeys(named) if name in metrics]
    return shown or list(metrics)


def _pm(stats: Mapping[str, Any]) -> str:
    if stats["n"] <= 1:
        return format_number(stats["mean"])
    return f"{format_number(stats['mean'])} ± {format_number(stats['std'], 2)}"


def _overview_table(summary: Mapping[str, Any]) -> str:
    rows = []
    for method in summary["methods"]:
        if method.get("error"):
            rows.append([method["method"], "ERROR", "—", "—", "—"])
            continue
        rows.append(
            [
                method["method"],
                totals_cell(method["claims"], method.get("claims_not_evaluated", [])),
                f"{method['runtime_s']:.1f}",
                "—" if method.get("cpu_s") is None else f"{method['cpu_s']:.1f}",
                method["run_dirs"][0],
            ]
        )
    columns = ["method", "empirical pass/fail/inconclusive/not evaluated", "wall (s)", "CPU (s)", "first run folder"]
    return markdown_table(columns, rows)


def _grand_totals(summary: Mapping[str, Any]) -> str:
    methods = [m for m in summary["methods"] if not m.get("error")]
    claims = [c for m in methods for c in m["claims"]]
    skipped = [s for m in methods for s in m.get("claims_not_evaluated", [])]
    errors = len(summary["methods"]) - len(methods)
    return "**Totals** — " + totals_text(claims, skipped) + (f" {errors} method(s) failed to run." if errors else "")


def aggregate_metrics(per_seed: Sequence[Mapping[str, float | None]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "n"}}`` over the seeds that report the metric as a number."""
    names: list[str] = []
    for metrics in per_seed:
        names += [name for name in metrics if name not in names]
    stats = {}
    for name in names:
        values = [float(m[name]) for m in per_seed if isinstance(m.get(name), (int, float))]
        if values:
            mean, std = mean_std(values)
            stats[name] = {"mean": mean, "std": std, "n": len(values)}
    return stats


CLAIM_COLUMNS = (
    "method", "id", "kind", "verdict", "ours", "ours_low", "ours_high", "paper", "paper_source", "n", "mean",
    "ci_low", "ci_high", "detail", "description",
)  # fmt: skip


def _csv(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def claims_csv(summary: Mapping[str, Any]) -> str:
    """One row per claim of every method (not-evaluated claims with their reason as detail)."""
    rows = []
    for method in summary["methods"]:
        for claim in method.get("claims", []):
            rows.append([method["method"], *(claim.get(c) for c in CLAIM_COLUMNS[1:3]), claim_verdict(claim),
                         *(claim.get(c) for c in CLAIM_COLUMNS[4:])])  # fmt: skip
        for claim in method.get("claims_not_evaluated", []):
            rows.append([method["method"], claim["id"], claim.get("kind", "empirical"), "not evaluated",
                         None, None, None, claim.get("paper"), claim.get("paper_source"), 0, None, None, None,
                         claim.get("reason"), claim.get("description")])  # fmt: skip
    return _csv(rows, CLAIM_COLUMNS)


def metrics_csv(summary: Mapping[str, Any]) -> str:
    """One row per metric of every method: mean, std and n over seeds, and the paper's number."""
    rows = [
        [method["method"], name, stats["mean"], stats["std"], stats["n"], method["paper_metrics"].get(name)]
        for method in summary["methods"]
        if not method.get("error")
        for name, stats in method["metrics"].items()
    ]
    return _csv(rows, ["method", "metric", "mean", "std", "n", "paper"])
