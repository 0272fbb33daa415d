"""The execution engine without Ray: the serial path, the missing-extra message, the no-shared-filesystem
task (run in this process), progress lines, and ``reprolab sweep``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core import engine
from reprolab.core.config import parse_set_options
from reprolab.core.engine import RunOutcome, RunSpec, execute, finished_line
from reprolab.core.errors import ConfigError
from reprolab.core.grid import grid_points, parse_grid

TINY = ["steps=10", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16", "embed=8",
        "batch_size=32", "checkpoint_every=5"]
TINY_SETS = [part for item in TINY for part in ("--set", item)]


def _spec(out: Path, seed: int = 0) -> RunSpec:
    return RunSpec("demi", "quick", seed, out, parse_set_options(TINY))


@pytest.fixture
def no_ray(monkeypatch):
    """Ray absent: ``import ray`` raises ImportError (also proves a path never imports it)."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_serial_path_never_imports_ray_and_jobs_2_names_the_extra(tmp_path, no_ray):
    outcomes = execute([_spec(tmp_path / "a")], jobs=1)
    assert outcomes[0].error is None and outcomes[0].results["method"] == "demi"
    with pytest.raises(ConfigError, match=r"pip install 'reprolab\[distributed\]'"):
        execute([_spec(tmp_path / "b"), _spec(tmp_path / "c", 1)], jobs=2)
    assert not (tmp_path / "b").exists()


def test_cli_jobs_2_without_ray_is_one_line_exit_2_and_default_falls_back(tmp_path, no_ray):
    runner = CliRunner()
    refused = runner.invoke(app, ["reproduce", "demi", "--seeds", "2", "--jobs", "2", *TINY_SETS,
                                  "--out", str(tmp_path / "r")])
    assert refused.exit_code == 2, refused.output
    assert refused.output.strip().count("\n") == 0 and "reprolab[distributed]" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "r").exists()
    # the default --jobs (every core) runs serially without Ray, saying so once
    engine_jobs = engine.default_jobs
    try:
        engine.default_jobs = lambda: 2
        fallback = runner.invoke(app, ["reproduce", "demi", "--seeds", "2", *TINY_SETS, "--out", str(tmp_path / "d")])
    finally:
        engine.default_jobs = engine_jobs
    assert fallback.exit_code == 0, fallback.output
    assert fallback.output.count("Ray is not installed") == 1
    assert "[2/2] demi seed 1:" in fallback.output


def test_bad_jobs_and_gpus_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--jobs must be >= 1"):
        execute([_spec(tmp_path)], jobs=0)
    with pytest.raises(ConfigError, match="--device cuda"):
        execute([_spec(tmp_path)], jobs=2, gpus_per_task=1)


def test_shipped_run_folder_is_identical_to_a_direct_run(tmp_path, monkeypatch):
    """No shared filesystem: the task runs in scratch space, returns the folder's files, the driver writes them."""
    monkeypatch.setattr(engine.tempfile, "gettempdir", lambda: str(tmp_path / "worker-tmp"))
    direct = execute([_spec(tmp_path / "direct")], jobs=1)[0]
    spec = _spec(tmp_path / "driver" / "seed0")
    marker = engine._write_marker([spec])
    Path(marker[0]).unlink()  # the worker cannot see the driver's folder
    payload = engine._ray_task(spec, True, marker, None, {}, None)
    assert payload["error"] is None and payload["files"] is not None
    assert not spec.out.exists(), "the task must not write into the driver's path"
    assert not engine._scratch_dir(spec).exists(), "scratch space is cleaned up after shipping"
    engine._unpack(spec.out, payload["files"])
    assert payload["results"]["metrics"] == direct.results["metrics"]
    for name in ("results.json", "metrics.jsonl", "report.md", "config.yaml", "checkpoints/last.pt"):
        assert (spec.out / name).is_file(), name
    assert (spec.out / "metrics.jsonl").read_text() == (tmp_path / "direct" / "metrics.jsonl").read_text()
    assert json.loads((spec.out / "results.json").read_text())["metrics"] == direct.results["metrics"]


def test_retry_after_a_kill_before_the_first_checkpoint_starts_over(tmp_path):
    """Files an earlier attempt left without a checkpoint are removed (the folder was empty at submission)."""
    spec = _spec(tmp_path / "run")
    reference = execute([_spec(tmp_path / "ref")], jobs=1)[0].results
    spec.out.mkdir()
    (spec.out / "config.yaml").write_text("method: demi\n")
    (spec.out / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    payload = engine._ray_task(spec, True, None, False, {}, None)
    assert payload["error"] is None and payload["results"]["metrics"] == reference["metrics"]
    assert (spec.out / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()
    # the same leftovers in a folder that was NOT empty at submission are refused, as on the serial path
    other = _spec(tmp_path / "other")
    other.out.mkdir()
    (other.out / "config.yaml").write_text("method: demi\n")
    refused = engine._ray_task(other, False, None, False, {}, None)
    assert refused["results"] is None and "already holds files" in refused["error"]


def test_pack_skips_big_and_temp_files_and_unpack_stays_inside(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    (folder / "figures").mkdir(parents=True)
    (folder / "results.json").write_text("{}")
    (folder / "figures" / "a.png").write_bytes(b"png")
    (folder / ".results.json.x.tmp").write_text("half")
    (folder / "big.pt").write_bytes(b"x" * 100)
    monkeypatch.setattr(engine, "MAX_SHIPPED_BYTES", 50)
    files, skipped = engine._pack(folder)
    assert set(files) == {"results.json", "figures/a.png"} and skipped == [("big.pt", 100)]
    engine._unpack(tmp_path / "copy", files)
    assert (tmp_path / "copy" / "figures" / "a.png").read_bytes() == b"png"
    with pytest.raises(Exception, match="outside the run folder"):
        engine._unpack(tmp_path / "copy", {"../escape.txt": b"x"})


def test_finished_line_counts_verdicts():
    spec = RunSpec("demi", "quick", 3, Path("x"), label="demi [steps=10]")
    results = {"runtime_s": 2.0, "cpu_s": 1.5, "claims": [{"verdict": "pass"}, {"verdict": "inconclusive"},
                                                           {"passed": False}]}
    assert finished_line(RunOutcome(spec, results=results)) == (
        "demi [steps=10] seed 3: 2.0 s wall, 1.5 s CPU; 1 pass, 1 fail, 1 inconclusive"
    )
    assert finished_line(RunOutcome(spec, error="boom")) == "demi [steps=10] seed 3: ERROR boom"


def test_parse_grid_reads_lists_and_refuses_malformed_axes():
    axes = parse_grid(["steps=10,20", "true_mis=[2,20],[4]"])
    assert axes == [("steps", [10, 20]), ("true_mis", [[2, 20], [4]])]
    assert grid_points(axes)[1] == {"steps": 10, "true_mis": [4]} and len(grid_points(axes)) == 4
    assert grid_points([]) == [{}]
    for bad in (["steps"], ["steps=1", "steps=2"], ["steps=1,,2"]):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid(bad)


def test_sweep_cli_writes_one_report_with_a_row_per_grid_point(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["sweep", "demi", "--grid", "steps=6,12", "--seeds", "1", "--jobs", "1",
                                      *TINY_SETS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [m["grid"] for m in summary["methods"]] == [{"steps": 6}, {"steps": 12}]
    assert summary["methods"][0]["run_dirs"][0].endswith("p00-steps=6/seed0")
    report = (out / "report.md").read_text()
    assert report.startswith("# reprolab sweep — `demi`") and "| steps | empirical p/f/i/ne |" in report
    assert "## demi [steps=6]" in report and "## demi [steps=12]" in report
    assert "[2/2] demi [steps=12] seed 0:" in result.output
    bad = CliRunner().invoke(app, ["sweep", "demi", "--grid", "stepz=1,2", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "stepz" in bad.output and not (tmp_path / "bad").exists()
