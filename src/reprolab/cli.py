"""The ``reprolab`` command line: ``list``, ``run``, ``reproduce``, ``report``.

Errors a user can cause are printed as one line (``error: ...``) with exit code 2; failing claims are
results, not errors, and exit 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproduce eleven ML papers in miniature.")

DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda (default cpu)")]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", help="torch CPU threads (default $REPROLAB_THREADS or 1)")
]
PerturbOption = Annotated[
    float,
    typer.Option(
        "--perturb",
        help="multiply every initial weight by 1 + PERTURB * N(0,1) (verdict-stability check; default 0: off)",
    ),
]
DataOption = Annotated[Path | None, typer.Option("--data", help="folder with real datasets (default $REPROLAB_DATA)")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Every registered method with its paper, claims, presets and datasets."""
    from reprolab.core.registry import list_experiments

    experiments = list_experiments()
    if as_json:
        typer.echo(json.dumps([e.describe() for e in experiments], indent=2))
        return
    for exp in experiments:
        typer.echo(f"{exp.name}: {exp.description}")
        typer.echo(f"  paper:    {exp.paper.cite()}")
        typer.echo(f"  presets:  {', '.join(exp.presets)}")
        for claim in exp.claims:
            typer.echo(f"  claim:    {claim.id} — {claim.description}")
        for info in exp.datasets:
            kind = "embedded" if info.embedded else f"real, under $REPROLAB_DATA/{info.subdir}"
            typer.echo(f"  dataset:  {info.name} ({kind}) — {info.description}")


@app.command("run")
def run_command(
    method: Annotated[str, typer.Argument(help="method name, see `reprolab list`")],
    preset: Annotated[str, typer.Option("--preset", help="quick or paper")] = "quick",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config field: key=value")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="run folder (default runs/...)")] = None,
    data: DataOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out from its checkpoint")] = False,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    perturb: PerturbOption = 0.0,
) -> None:
    """Run one experiment into a run folder."""
    from reprolab.core.config import parse_set_options
    from reprolab.core.errors import ReproError
    from reprolab.core.runner import default_run_dir, run_experiment

    if resume and out is None:
        _fail("--resume needs --out pointing at the run folder to continue")
    out = out if out is not None else default_run_dir(method, preset, seed)
    try:
        overrides = parse_set_options(set_ or [])
        results = run_experiment(
            method,
            preset,
            overrides,
            seed=seed,
            out=out,
            data=data,
            resume=resume,
            device=device,
            threads=threads,
            perturb=perturb,
        )
    except ReproError as err:
        _fail(str(err))
        return
    from reprolab.core.report import totals_text

    totals = totals_text(results["claims"], results["claims_not_evaluated"])
    typer.echo(f"{method}: {totals} {results['runtime_s']:.1f} s")
    for claim in results["claims"]:
        typer.echo(f"  [{claim['verdict'].upper()}] {claim['id']}: {claim['detail']}")
    if any(c["kind"] != "structural" and c["n"] <= 1 for c in results["claims"]):
        typer.echo(
            "  claims decided on one unit (one seed) are inconclusive by rule; "
            "`reprolab reproduce` runs the seeds each preset states"
        )
    typer.echo(f"run folder: {out}")


@app.command("reproduce")
def reproduce_command(
    methods: Annotated[list[str] | None, typer.Argument(help="methods to run, or `all` (default all)")] = None,
    preset: Annotated[str, typer.Option("--preset")] = "quick",
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="seeds 0..N-1 per method (default: the preset's stated seeds)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/reproduce-...)")] = None,
    data: DataOption = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    perturb: PerturbOption = 0.0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config field of every run: key=value")
    ] = None,
) -> None:
    """Run experiments over seeds and write an aggregated report with each claim's verdict."""
    from reprolab.core.config import parse_set_options
    from reprolab.core.errors import ReproError
    from reprolab.core.runner import print_summary, reproduce

    try:
        summary = reproduce(
            methods or None,
            preset=preset,
            seeds=seeds,
            out=out,
            data=data,
            device=device,
            threads=threads,
            perturb=perturb,
            overrides=parse_set_options(set_ or []),
            log=lambda msg: typer.echo(msg, err=True),
        )
    except ReproError as err:
        _fail(str(err))
        return
    print_summary(summary)
    typer.echo(f"report: {Path(summary['out_dir']) / 'report.md'}")
    if any(m.get("error") for m in summary["methods"]):
        raise typer.Exit(code=1)


@app.command("report")
def report_command(run_dir: Annotated[Path, typer.Argument(help="a finished run folder")]) -> None:
    """Rebuild report.md of a finished run from its results.json."""
    from reprolab.core.errors import ReproError
    from reprolab.core.runner import rebuild_report

    try:
        path = rebuild_report(run_dir)
    except ReproError as err:
        _fail(str(err))
        return
    typer.echo(str(path))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
