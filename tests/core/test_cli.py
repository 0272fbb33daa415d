"""The CLI contract: list, run, report, reproduce; errors as one line with a non-zero exit code."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from reprolab.cli import app

runner = CliRunner()
TINY_DEMI = [
    "--set",
    "steps=15",
    "--set",
    "eval_batches=2",
    "--set",
    "true_mis=[2,20]",
    "--set",
    "ks=[2]",
    "--set",
    "exact_ks=[]",
    "--set",
    "digits=false",
    "--set",
    "hidden=16",
    "--set",
    "embed=8",
    "--set",
    "batch_size=32",
]


def test_list_json_describes_demi():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    methods = {m["name"]: m for m in json.loads(result.output)}
    demi = methods["demi"]
    assert {"quick", "paper"} <= set(demi["presets"])
    assert demi["claims"] and demi["datasets"] and "Sordoni" in demi["paper"]["authors"]


def test_list_shows_the_presets_of_every_dataset_and_every_preset_under_a_dataset():
    """Issue 20: `reprolab list` says which presets run on which dataset; every preset of every method runs on
    at least one listed dataset, and a dataset names only presets its method has (checked at registration)."""
    from reprolab.core.registry import list_experiments

    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for experiment in list_experiments():
        covered = {name for info in experiment.datasets for name in info.presets}
        assert covered == set(experiment.presets), (experiment.name, set(experiment.presets) - covered)
        for info in experiment.datasets:
            at = lines.index(next(line for line in lines if line.startswith(f"  dataset:  {info.name} (")))
            assert lines[at + 1].startswith("            presets: "), info.name
    enzymes = lines[lines.index(next(line for line in lines if line.startswith("  dataset:  ENZYMES ("))) + 1]
    assert enzymes.split("presets: ")[1].split(", ")[:2] == ["paper", "paper_enzymes"]
    listed = {m["name"]: m for m in json.loads(runner.invoke(app, ["list", "--json"]).output)}
    citeseer = next(d for d in listed["lds"]["datasets"] if d["name"] == "planetoid-citeseer")
    assert citeseer["presets"] == ["paper", "citeseer", "citeseer_knn"]


def test_a_dataset_naming_an_unknown_preset_is_refused_at_registration():
    import dataclasses

    from reprolab.core.registry import get_experiment

    demi = get_experiment("demi")
    wrong = dataclasses.replace(demi.datasets[0], presets=("quick", "no_such_preset"))
    with pytest.raises(ValueError, match="no_such_preset"):
        dataclasses.replace(demi, datasets=(wrong,))


def test_unknown_method_is_one_line_error():
    result = runner.invoke(app, ["run", "nope"])
    assert result.exit_code == 2
    assert "unknown method 'nope'" in result.output and "demi" in result.output
    assert "Traceback" not in result.output


def test_unknown_key_and_wrong_type_and_preset_are_refused(tmp_path):
    bad_key = runner.invoke(app, ["run", "demi", "--set", "stepz=3", "--out", str(tmp_path / "a")])
    assert bad_key.exit_code == 2 and "valid keys:" in bad_key.output and "steps" in bad_key.output
    bad_type = runner.invoke(app, ["run", "demi", "--set", "steps=many", "--out", str(tmp_path / "b")])
    assert bad_type.exit_code == 2 and "steps: expected an integer" in bad_type.output
    bad_preset = runner.invoke(app, ["run", "demi", "--preset", "huge", "--out", str(tmp_path / "c")])
    assert bad_preset.exit_code == 2 and "valid presets: paper, quick" in bad_preset.output
    assert not (tmp_path / "a").exists()


def test_run_writes_the_results_contract_and_report_rebuilds(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    for key in ("method", "preset", "seed", "config", "metrics", "claims", "runtime_s", "versions"):
        assert key in results
    assert results["method"] == "demi" and results["seed"] == 3 and results["config"]["steps"] == 15
    assert set(results["versions"]) >= {"python", "torch", "reprolab"}
    assert results["cpu_s"] > 0.0 and results["runtime_s"] > 0.0
    assert all(isinstance(v, (int, float)) or v is None for v in results["metrics"].values())
    for claim in results["claims"]:
        assert set(claim) >= {"id", "description", "kind", "verdict", "passed", "ours", "paper", "paper_source"}
        assert set(claim) >= {"detail", "n", "mean", "ci_low", "ci_high", "values", "unit_ids"}
        assert isinstance(claim["passed"], bool) and claim["passed"] == (claim["verdict"] == "pass")
        if claim["kind"] != "structural":  # one seed: an empirical verdict cannot be decided
            assert claim["verdict"] == "inconclusive"
    assert "one unit (one seed)" in result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["config"]["steps"] == 15
    assert (out / "metrics.jsonl").read_text().strip()
    assert (out / "figures" / "mi_sweep.png").stat().st_size > 0
    (out / "report.md").unlink()
    rebuilt = runner.invoke(app, ["report", str(out)])
    assert rebuilt.exit_code == 0 and "## Claims" in (out / "report.md").read_text()

    again = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--seed", "3", "--out", str(out)])
    assert again.exit_code == 2 and "already holds files" in again.output
    other = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--seed", "4", "--out", str(out), "--resume"])
    assert other.exit_code == 2 and "--seed 4 differs from the run's seed 3" in other.output
    assert json.loads((out / "results.json").read_text()) == results  # nothing written was lost


def test_report_on_a_non_run_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no results.json" in result.output


def test_reproduce_api_writes_summary_with_mean_and_std(tmp_path):
    from reprolab.core.config import parse_set_options
    from reprolab.core.runner import reproduce

    summary = reproduce(["demi"], seeds=2, out=tmp_path, overrides=parse_set_options(TINY_DEMI[1::2]))
    method = summary["methods"][0]
    assert "error" not in method, method.get("error")
    assert method["metrics"]["log_n"]["n"] == 2 and method["metrics"]["log_n"]["std"] == 0.0
    assert all(c["n"] == 2 and c["unit_ids"] == ["seed0", "seed1"] for c in method["claims"])
    assert all(c["verdict"] in ("pass", "fail", "inconclusive") for c in method["claims"])
    assert any(c["ours_low"] is not None for c in method["claims"])  # the 95% interval over seeds
    counted = sum(sum(by_verdict.values()) for by_verdict in method["totals"].values())
    assert counted == len(method["claims"]) + len(method["claims_not_evaluated"])  # demi has a structural check too
    report = (tmp_path / "report.md").read_text()
    assert "## demi" in report and "±" in report and "Paper's empirical claims" in report
    assert json.loads((tmp_path / "summary.json").read_text())["seeds"] == 2


def test_cuda_request_without_a_gpu_is_a_clear_error(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--device", "cuda", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no CUDA device" in result.output
    unknown = runner.invoke(app, ["run", "demi", "--device", "tpu", "--out", str(tmp_path / "s")])
    assert unknown.exit_code == 2 and "valid choices: auto, cpu, cuda" in unknown.output


def test_threads_option_is_validated_and_restored(tmp_path):
    import torch

    before = torch.get_num_threads()
    bad = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--threads", "0", "--out", str(tmp_path / "t")])
    assert bad.exit_code == 2 and "--threads must be >= 1" in bad.output
    assert not (tmp_path / "t").exists()
    ok = runner.invoke(app, ["run", "demi", *TINY_DEMI, "--threads", "1", "--out", str(tmp_path / "u")])
    assert ok.exit_code == 0, ok.output
    assert torch.get_num_threads() == before


def test_cpu_threads_limits_torch_and_blas_then_restores():
    import torch
    from threadpoolctl import threadpool_info

    from reprolab.core.runner import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
