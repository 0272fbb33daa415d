"""`reprolab combine`: the halves of a protocol run one model per process decide the claims as one joint run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reprolab.cli import app

runner = CliRunner()
TINY = ["--set", "epochs=2", "--set", "run_folds=2", "--set", "num_graphs=60", "--no-tensorboard"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A joint DiffPool run of two models and the same protocol run as one process per model."""
    root = tmp_path_factory.mktemp("combine")
    for name, models in (("joint", "[diffpool, graphsage_mean]"), ("a", "[diffpool]"), ("b", "[graphsage_mean]")):
        result = runner.invoke(app, ["run", "diffpool", *TINY, "--set", f"models={models}", "--out", str(root / name)])
        assert result.exit_code == 0, result.output
    return root


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.mark.slow
def test_combined_halves_equal_the_joint_run(runs, tmp_path):
    result = runner.invoke(app, ["combine", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "ab")])
    assert result.exit_code == 0, result.output
    joint, combined = _results(runs / "joint"), _results(tmp_path / "ab")
    assert combined["metrics"] == joint["metrics"] and combined["units"] == joint["units"]
    assert [(c["id"], c["verdict"], c["n"], c["mean"]) for c in combined["claims"]] == [
        (c["id"], c["verdict"], c["n"], c["mean"]) for c in joint["claims"]
    ]
    assert combined["config"]["models"] == ["diffpool", "graphsage_mean"]
    assert [part["models"] for part in combined["combined_from"]] == [["diffpool"], ["graphsage_mean"]]
    assert combined["cpu_s"] == pytest.approx(_results(runs / "a")["cpu_s"] + _results(runs / "b")["cpu_s"], abs=1e-2)
    assert "Combined from 2 runs split by `models`" in (tmp_path / "ab" / "report.md").read_text()
    assert "synthetic_diffpool_beats_graphsage_mean" in result.output
    import reprolab

    again = reprolab.combine_runs([runs / "a", runs / "b"], tmp_path / "api")  # the same from Python
    assert again["claims"] == combined["claims"] and again["units"] == combined["units"]


def _edited(runs: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(runs / "b", folder)
    results = _results(folder)
    edit(results)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["config"].__setitem__("lr", 0.5), "setting lr=0.5 differs"),
        (lambda r: r["config"].__setitem__("models", ["diffpool"]), "model 'diffpool' is also in"),
        (lambda r: r.__setitem__("seed", 7), "seed 7 differs"),
        (lambda r: r["metrics"].__setitem__("synthetic_protocol_complete", 0.5), "metric synthetic_protocol_complete"),
    ],
)
def test_runs_that_are_not_halves_of_one_protocol_are_refused_in_one_line(runs, tmp_path, edit, message):
    other = _edited(runs, tmp_path, edit)
    out = tmp_path / "ab"
    result = runner.invoke(app, ["combine", str(runs / "a"), str(other), "--out", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ab-")]  # no staging folder left behind


@pytest.mark.slow
def test_an_existing_output_or_a_single_run_is_refused(runs, tmp_path):
    result = runner.invoke(app, ["combine", str(runs / "a"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "at least two run folders" in result.output
    result = runner.invoke(app, ["combine", str(runs / "a"), str(runs / "b"), "--out", str(runs / "joint")])
    assert result.exit_code == 2 and "already exists" in result.output
