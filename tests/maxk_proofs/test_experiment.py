from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError, resolve_config
from reprolab.core.registry import get_experiment
from reprolab.maxk_proofs import (
    STRATEGIES,
    MaxKConfig,
    MaxKTransformer,
    brute_force_correct,
    save_state_dict_file,
    train_model,
)
from reprolab.maxk_proofs.experiment import STRATEGY_NAMES, MaxKProofsConfig


def test_strategy_names_match_the_registry():
    assert tuple(STRATEGIES) == STRATEGY_NAMES


def test_quick_run_end_to_end(tmp_path):
    args = ["run", "maxk_proofs", "--out", str(tmp_path / "run")]
    for setting in ("d_vocab=8", "d_model=16", "d_head=16", "n_seeds=2", "steps=300", "forward_check_samples=2000"):
        args += ["--set", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    evaluated = {c["id"] for c in results["claims"]}
    skipped = {c["id"] for c in results["claims_not_evaluated"]}
    assert evaluated | skipped == {c.id for c in get_experiment("maxk_proofs").claims}
    assert {c for c in skipped if not c.endswith(("_k5", "_k10"))} == set()  # K = 5, 10 need their presets
    verdicts = {c["id"]: c["verdict"] for c in results["claims"]}
    assert verdicts["every_bound_sound"] == verdicts["brute_force_equals_forward"] == "pass"
    assert len(results["units"]) == 2 and "bound_cubic_k4" in results["units"]["seed0"]
    metrics = results["metrics"]
    assert metrics["max_bound_excess"] <= 0 and metrics["n_models"] == 2
    assert metrics["bound_mean_cubic"] <= metrics["bound_mean_brute_force"]
    rows = list(csv.DictReader((tmp_path / "run" / "proofs.csv").open()))
    assert len(rows) == 2 * len(STRATEGIES)
    dims = {row["strategy"]: int(row["unexplained_dim"]) for row in rows}
    assert dims["brute_force"] == 8**4 * 8 and dims["cubic"] == 3 * 8**2 + 2 * 4 * 8
    assert metrics["bound_mean_joint_logit"] >= metrics["bound_mean_cubic"]
    assert (tmp_path / "run" / "figures" / "flops_vs_bound.png").exists()
    assert (tmp_path / "run" / "figures" / "unexplained_dimension.png").exists()
    assert (tmp_path / "run" / "models" / "seed0.pt").exists()
    _saved_models_are_the_proved_ones(tmp_path / "run", results)


def _saved_models_are_the_proved_ones(out, results) -> None:
    """models/seed<s>, rebuilt by load_run, has the run's exhaustive float32 accuracy, and the TransformerLens export
    beside it holds the same weights."""
    import reprolab
    from reprolab.maxk_proofs.brute_force import float32_correct
    from reprolab.maxk_proofs.model import load_state_dict_file

    run = reprolab.load_run(out)
    assert run.models == ["seed0", "seed1"]
    for name in run.models:
        model = run.model(name)
        expected = results["units"][name]["true_accuracy_float32_k4"]
        assert float32_correct(model) / 8**4 == pytest.approx(expected, abs=1e-6)  # one input is 2.4e-4
        exported = load_state_dict_file(out / "models" / f"{name}.pt").state_dict()
        assert all(torch.equal(value, exported[key]) for key, value in model.state_dict().items())


def test_run_on_user_supplied_transformer_lens_models(tmp_path):
    model = MaxKTransformer(MaxKConfig(d_vocab=16, n_ctx=4, d_model=8, d_head=8))
    model.reset_parameters(torch.Generator().manual_seed(0))
    path = save_state_dict_file(model, tmp_path / "tl.pt")
    args = ["run", "maxk_proofs", "--out", str(tmp_path / "run"), "--set", f"model_files=['{path}']"]
    args += ["--set", "strategies=['brute_force','cubic']", "--set", "forward_check_samples=1000"]
    args += ["--set", "forward_check_queries=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert metrics["bound_mean_brute_force"] == brute_force_correct(model) / 16**4


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="strategies"):
        MaxKProofsConfig(strategies=["brute_force", "magic"]).validate()
    with pytest.raises(ConfigError, match="d_vocab_out"):
        MaxKProofsConfig(d_vocab_out=3).validate()


def test_paper_preset_resolves():
    experiment = get_experiment("maxk_proofs")
    config = resolve_config(experiment.config_cls, experiment.presets, "paper")
    assert config.n_seeds == 151 and config.steps == 3000 and config.batch_size == 128 and config.lr == 1e-3


def test_paper_column_follows_k(tmp_path, monkeypatch):
    """k5 / k10 reports show no paper number (the paper's Table 1 is Max-of-4), quick shows Table 1 with its
    source; in the run report, the reproduce report and a rebuilt report. The run is a stub: no training."""
    import dataclasses

    from reprolab.core import registry
    from reprolab.core.runner import rebuild_report, reproduce, run_experiment

    experiment = get_experiment("maxk_proofs")
    for preset in ("quick", "k5", "k10", "paper"):
        config = resolve_config(experiment.config_cls, experiment.presets, preset)
        paper = experiment.paper_metrics_for(config)
        if config.n_ctx == 4:
            assert paper["bound_mean_cubic"] == 0.9845 and paper["unexplained_dim_cubic"] == 3 * 64**2 + 2 * 4 * 64
            assert experiment.paper_sources_for(paper)["bound_mean_cubic"] == "recalled"
        else:
            assert paper == {}, preset
    small = resolve_config(experiment.config_cls, experiment.presets, "quick", {"d_vocab": 8})
    assert experiment.paper_metrics_for(small) == {}  # Table 1 is for d_vocab 64 only

    stub = dataclasses.replace(experiment, run=lambda config, ctx: {"bound_mean_cubic": 0.5})
    monkeypatch.setitem(registry._REGISTRY, "maxk_proofs", stub)
    for preset, cell in (("quick", "0.9845 (recalled)"), ("k5", "—")):
        out = tmp_path / preset
        results = run_experiment("maxk_proofs", preset, out=out / "run")
        assert (results["paper_metrics"] == {}) == (preset == "k5")
        assert f"| bound_mean_cubic | 0.5 | {cell} |" in (out / "run" / "report.md").read_text()
        (out / "run" / "report.md").unlink()
        rebuild_report(out / "run")
        assert f"| bound_mean_cubic | 0.5 | {cell} |" in (out / "run" / "report.md").read_text()
        summary = reproduce(["maxk_proofs"], preset=preset, seeds=1, out=out / "reproduce")
        assert (summary["methods"][0]["paper_metrics"] == {}) == (preset == "k5")
        assert f"| bound_mean_cubic | 0.5 | {cell} |" in (out / "reproduce" / "report.md").read_text()


def test_default_training_solves_max_of_4():
    """The paper's config (d_vocab 64, K=4, AdamW 1e-3, batch 128, 3000 steps) reaches > 99% on all inputs."""
    model = MaxKTransformer()
    model.reset_parameters(torch.Generator().manual_seed(0))
    train_model(model, steps=3000, generator=torch.Generator().manual_seed(0))
    assert brute_force_correct(model) / 64**4 > 0.99


def test_training_is_deterministic_per_seed():
    runs = []
    for _ in range(2):
        model = MaxKTransformer()
        model.reset_parameters(torch.Generator().manual_seed(5))
        train_model(model, steps=20, generator=torch.Generator().manual_seed(6))
        runs.append(model.W_E.detach().clone())
    assert torch.equal(runs[0], runs[1])


def test_long_context_runs_without_brute_force(tmp_path):
    """Max-of-10: brute force is infeasible (refused with a clear error); the proofs still run."""
    with pytest.raises(ConfigError, match="brute force over d_vocab.*exceeds max_inputs"):
        MaxKProofsConfig(n_ctx=10).validate()
    args = ["run", "maxk_proofs", "--out", str(tmp_path / "run"), "--set", "n_ctx=10", "--set", "d_vocab=16"]
    args += ["--set", "d_model=8", "--set", "d_head=8", "--set", "n_seeds=1", "--set", "steps=50"]
    args += ["--set", "strategies=['cubic','subcubic','lowrank_qk']", "--set", "forward_check_samples=500"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "bound_mean_cubic" in results["metrics"] and "max_bound_excess" not in results["metrics"]
    assert any(c["id"] == "every_bound_sound" for c in results["claims_not_evaluated"])
