"""The ``reprolab`` command line: ``list``, ``show``, ``run``, ``reproduce``, ``sweep``, ``report``, ``data``.

Errors a user can cause are printed as one line (``error: ...``) with exit code 2; failing claims are
results, not errors, and exit 0.
"""

from __future__ import annotations

import json
import os
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
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        min=1,
        help="runs at once (default: every core; 1: serial, no Ray); more than 1 runs them as Ray tasks",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="join this Ray cluster (ray://host:port, host:port or auto) instead of a local one"),
]
GpusOption = Annotated[
    float, typer.Option("--gpus-per-task", min=0, help="GPUs each Ray task asks for (with --device cuda; default 0)")
]
SeedsOption = Annotated[
    int | None,
    typer.Option("--seeds", min=1, help="seeds 0..N-1 per method or grid point (default: the preset's stated seeds)"),
]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="override a config field of every run: key=value")]


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
            presets = ", ".join(info.presets) if info.presets else "none (its description says how it is used)"
            typer.echo(f"            presets: {presets}")


@app.command("show")
def show_command(
    method: Annotated[str, typer.Argument(help="method name, see `reprolab list`")],
    preset: Annotated[str | None, typer.Option("--preset", help="also show this preset's values")] = None,
) -> None:
    """Every setting of a method (type, default, the preset's value, meaning), its presets, claims and datasets."""
    from reprolab.core.describe import render_show
    from reprolab.core.errors import ReproError
    from reprolab.core.registry import get_experiment

    try:
        typer.echo(render_show(get_experiment(method), preset))
    except ReproError as err:
        _fail(str(err))


@app.command("run")
def run_command(
    method: Annotated[str, typer.Argument(help="method name, see `reprolab list`")],
    preset: Annotated[
        str | None, typer.Option("--preset", help="a preset of the method, see `reprolab show METHOD` (default quick)")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config field: key=value")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="a YAML file of overrides (a mapping of config fields)")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="default 0")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run folder (default runs/...)")] = None,
    data: DataOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out with the settings in its config.yaml")
    ] = False,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    perturb: PerturbOption = 0.0,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard/--no-tensorboard",
            help="also log scalars and figures for TensorBoard under RUN/tensorboard (default on for `run`)",
        ),
    ] = True,
) -> None:
    """Run one experiment into a run folder."""
    from reprolab.core.config import parse_set_options, read_overrides_file
    from reprolab.core.errors import ReproError
    from reprolab.core.runner import default_run_dir, resume_settings, run_experiment

    if resume and out is None:
        _fail("--resume needs --out pointing at the run folder to continue")
    try:
        overrides = {**(read_overrides_file(config_file) if config_file else {}), **parse_set_options(set_ or [])}
        if resume and out is not None:
            saved = resume_settings(out, method, preset, seed, overrides, perturb)
            preset, seed, overrides, perturb = saved["preset"], saved["seed"], saved["overrides"], saved["perturb"]
        preset, seed = preset or "quick", 0 if seed is None else seed
        out = out if out is not None else default_run_dir(method, preset, seed)
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
            tensorboard=tensorboard and os.environ.get("REPROLAB_TENSORBOARD", "1") not in {"0", "false", "no", "off"},
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
    preset: Annotated[str, typer.Option("--preset", help="the preset of every method (`reprolab show`)")] = "quick",
    seeds: SeedsOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/reproduce-...)")] = None,
    data: DataOption = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    perturb: PerturbOption = 0.0,
    set_: SetOption = None,
    jobs: JobsOption = None,
    address: AddressOption = None,
    gpus_per_task: GpusOption = 0,
) -> None:
    """Run experiments over seeds and write an aggregated report with each claim's verdict."""
    from reprolab.core.config import parse_set_options
    from reprolab.core.engine import check_available
    from reprolab.core.errors import ReproError
    from reprolab.core.runner import print_summary, reproduce

    try:
        check_available(jobs, address)
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
            jobs=jobs,
            address=address,
            gpus_per_task=gpus_per_task,
            log=lambda msg: typer.echo(msg, err=True),
        )
    except ReproError as err:
        _fail(str(err))
        return
    print_summary(summary, sys.stdout)  # the current stdout (the default was bound when runner was imported)
    typer.echo(f"report: {Path(summary['out_dir']) / 'report.md'}")
    if any(m.get("error") for m in summary["methods"]):
        raise typer.Exit(code=1)


@app.command("sweep")
def sweep_command(
    method: Annotated[str, typer.Argument(help="method name, see `reprolab list`")],
    preset: Annotated[str, typer.Option("--preset")] = "quick",
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="key=v1,v2,... (repeat for a product of several keys)")
    ] = None,
    seeds: SeedsOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/sweep-...)")] = None,
    set_: SetOption = None,
    data: DataOption = None,
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    jobs: JobsOption = None,
    address: AddressOption = None,
    gpus_per_task: GpusOption = 0,
) -> None:
    """Run METHOD at every point of a grid over seeds (as parallel tasks) and write one aggregated report."""
    from reprolab.core.config import parse_set_options
    from reprolab.core.engine import check_available
    from reprolab.core.errors import ReproError
    from reprolab.core.grid import parse_grid, sweep
    from reprolab.core.runner import print_summary

    try:
        check_available(jobs, address)
        summary = sweep(
            method,
            preset=preset,
            grid=parse_grid(grid or []),
            seeds=seeds,
            out=out,
            overrides=parse_set_options(set_ or []),
            data=data,
            device=device,
            threads=threads,
            jobs=jobs,
            address=address,
            gpus_per_task=gpus_per_task,
            log=lambda msg: typer.echo(msg, err=True),
        )
    except ReproError as err:
        _fail(str(err))
        return
    print_summary(summary, sys.stdout)  # the current stdout (the default was bound when runner was imported)
    typer.echo(f"report: {Path(summary['out_dir']) / 'report.md'}")
    if any(m.get("error") for m in summary["methods"]):
        raise typer.Exit(code=1)


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="a finished run folder, or a reproduce folder")],
    as_html: Annotated[
        bool, typer.Option("--html", help="also write report.html: one self-contained page, figures embedded")
    ] = False,
) -> None:
    """Rebuild report.md of a finished run from its results.json (a reproduce folder: from summary.json)."""
    from reprolab.core.errors import ReproError
    from reprolab.core.html import write_html_report
    from reprolab.core.runner import rebuild_report, rebuild_reproduce_report

    try:
        if (run_dir / "summary.json").is_file() and not (run_dir / "results.json").is_file():
            path = rebuild_reproduce_report(run_dir)
        else:
            path = rebuild_report(run_dir)
        if as_html:
            path = write_html_report(run_dir)
    except ReproError as err:
        _fail(str(err))
        return
    typer.echo(str(path))


@app.command("combine")
def combine_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="finished run folders of one protocol split by `models`")],
    out: Annotated[Path, typer.Option("--out", help="the new folder for the combined results.json and report.md")],
) -> None:
    """Decide the claims of a protocol run as one process per model (same method, preset, seed and settings,
    disjoint `models`): metrics and units merged, claims decided as in a single run."""
    from reprolab.core.combine import combine_runs
    from reprolab.core.errors import ReproError
    from reprolab.core.report import totals_text

    try:
        combined = combine_runs(run_dirs, out)
    except ReproError as err:
        _fail(str(err))
        return
    typer.echo(f"{combined['method']}: {totals_text(combined['claims'], combined['claims_not_evaluated'])}")
    for claim in combined["claims"]:
        typer.echo(f"  [{claim['verdict'].upper()}] {claim['id']}: {claim['detail']}")
    typer.echo(f"combined run folder: {out}")


data_app = typer.Typer(no_args_is_help=True, help="Datasets that can be fetched by URL (pinned, sha256-checked).")
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list_command(
    dest: Annotated[Path | None, typer.Option("--dest", help="data home to check (default $REPROLAB_DATA)")] = None,
) -> None:
    """Every fetchable dataset: name, folder under the data home, files, source, and whether it is present."""
    from reprolab.core.data import data_home
    from reprolab.core.fetch import FETCHABLE

    home = data_home(dest)
    typer.echo(f"data home: {home}")
    for entry in FETCHABLE.values():
        state = "present" if entry.present(home) else "absent"
        typer.echo(f"{entry.name:<20} {entry.folder + '/':<22} {len(entry.files):>2} files  {state:<8} "
                   f"{entry.source()}  {entry.description}")  # fmt: skip


@data_app.command("fetch")
def data_fetch_command(
    name: Annotated[str, typer.Argument(help="a name from `reprolab data list`")],
    dest: Annotated[Path | None, typer.Option("--dest", help="data home to write to (default $REPROLAB_DATA)")] = None,
) -> None:
    """Download NAME's files (each sha256-checked before it is kept) and print the layout written."""
    from reprolab.core.data import data_home
    from reprolab.core.errors import ReproError
    from reprolab.core.fetch import fetch

    try:
        files = fetch(name, dest)
    except ReproError as err:
        _fail(str(err))
        return
    home = data_home(dest)
    typer.echo(f"{name}: {len(files)} files under {home}")
    for path in files:
        typer.echo(f"  {path.relative_to(home)}  ({path.stat().st_size:,} bytes)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
