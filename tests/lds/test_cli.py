"""One short end-to-end run through the CLI, and configuration errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError
from reprolab.lds.experiment import LDSConfig

TINY = ["tables=[wine]", "seeds=1", "max_outer=2", "patience=1", "inner_max_steps=5", "gcn_epochs=10",
        "n_sample=1"]


@pytest.mark.slow
def test_cli_quick_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    args = ["run", "lds", "--seed", "3", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "lds" and results["seed"] == 3
    metrics = results["metrics"]
    for key in ("wine_acc_lds", "wine_acc_knn_gcn", "wine_acc_logreg", "wine_acc_mlp", "wine_acc_graph_free_best",
                "wine_acc_lds_frozen_theta"):
        assert 0.0 <= metrics[key] <= 100.0
    verdicts = {claim["id"]: claim for claim in results["claims"]}
    assert set(verdicts) == {"knn_lds_beats_knn_gcn_wine", "knn_lds_beats_graph_free_wine"}
    assert verdicts["knn_lds_beats_knn_gcn_wine"]["paper"] == 97.3
    skipped = {claim["id"] for claim in results["claims_not_evaluated"]}
    assert "cora_lds_beats_gcn_full_graph" in skipped and "knn_lds_beats_knn_gcn_digits" in skipped
    assert (out / "figures" / "edge_probabilities.png").is_file()
    assert (out / "figures" / "adjacency_wine.png").is_file()
    # resumed after its last checkpoint, the run re-logs no finished unit: the log is unchanged
    log = (out / "metrics.jsonl").read_text()
    (out / "results.json").unlink()
    assert CliRunner().invoke(app, [*args, "--resume"]).exit_code == 0
    assert (out / "metrics.jsonl").read_text() == log
    assert json.loads((out / "results.json").read_text())["metrics"] == metrics
    _saved_model_predicts_as_in_the_run(out, metrics)


def _saved_model_predicts_as_in_the_run(out, metrics) -> None:
    """models/lds-wine (split 0), rebuilt by load_run, gives the run's test accuracy: its GCN weights and theta, and
    the run's own graph draws (the saved generator state)."""
    import reprolab
    from reprolab.core.seeding import derive_seed
    from reprolab.lds.data import load_uci

    run = reprolab.load_run(out)
    assert run.models == ["lds-wine"]
    data = load_uci("wine", derive_seed(3, "wine", "split", 0) % (2**31))
    logits = run.model("lds-wine")(data.features)
    accuracy = float((logits[data.test_mask].argmax(1) == data.labels[data.test_mask]).double().mean())
    assert 100 * accuracy == pytest.approx(metrics["wine_acc_lds"], abs=1e-5)  # results.json rounds to 6 digits


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("tables", ["iris"], "unknown table"), ("knn_metrics", ["l1"], "knn_metrics"), ("taus", [0], "taus"),
     ("graph_removal", [1.5], "graph_removal"), ("graphs", ["Cora!"], "graphs"),
     ("frozen_control", ["iris"], "frozen_control")],
)
def test_config_validation_names_the_field(field, value, message):
    config = LDSConfig(**{field: value})
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_cli_rejects_unknown_key(tmp_path):
    result = CliRunner().invoke(app, ["run", "lds", "--set", "nonsense=1", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "nonsense" in result.output


def test_presets_are_valid_and_cover_both_graphs():
    from reprolab.lds.experiment import PRESETS

    assert {"quick", "paper", "cora", "citeseer", "cora_knn", "citeseer_knn"} <= set(PRESETS)
    for values in PRESETS.values():
        LDSConfig(**values).validate()
    paper = LDSConfig(**PRESETS["paper"])
    # the paper: both graphs, edge removal inside the paper's 0-75 % range, the official stopping rule
    assert paper.graphs == ["cora", "citeseer"] and paper.knn_graphs == ["cora", "citeseer"]
    assert max(paper.graph_removal) == 0.75 and not paper.es_tiebreak_loss and not paper.input_dropout


def test_planetoid_preset_descriptions_state_the_preset_run():
    from reprolab.core.describe import preset_docs
    from reprolab.core.registry import get_experiment
    from reprolab.lds.experiment import PRESETS

    docs = preset_docs(get_experiment("lds"))
    for name in ("cora", "citeseer", "cora_knn", "citeseer_knn"):
        config = LDSConfig(**PRESETS[name])
        text = docs[name]  # what `reprolab show lds` prints: the run, not another dict's paper-number comment
        assert name.split("_")[0].capitalize() in text and "recalled" not in text, text
        schedule = f"≤ {config.max_outer} outer iterations (patience {config.patience}) of ≤ {config.inner_max_steps}"
        assert schedule in text
        assert config.es_tiebreak_loss and "ties broken by the loss" in text
        assert ("kNN-LDS" in text) == bool(config.knn_graphs) and ("LDS vs GCN" in text) == bool(config.graphs)


def test_thread_guard_restores_setting_and_means_compare_exactly():
    import torch

    from reprolab.lds.pipeline import _mean_std, _threads_for

    before = torch.get_num_threads()
    with _threads_for(100, torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    # equal correct counts on a 539-node test set must give equal means (claims use strict ">")
    assert _mean_std([100 * 503 / 539, 100 * 507 / 539])[0] == _mean_std([100 * 497 / 539, 100 * 513 / 539])[0]


@pytest.mark.parametrize("preset", ["cora", "citeseer_knn"])
def test_graph_without_data_names_the_missing_folder(tmp_path, preset):
    args = ["run", "lds", "--preset", preset, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "planetoid" in result.output
    assert "Or fetch it: reprolab data fetch planetoid-" in result.output  # the set can be fetched by URL
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_an_absent_graph_is_checked_before_training_and_skipped_beside_the_tables(tmp_path):
    """Issue 20: a run with tables and absent Planetoid sets (`paper` without Cora/Citeseer) says so before any
    training, once per set, runs the tables, and leaves the sets' claims `not evaluated`."""
    args = ["run", "lds", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"),
            "--set", "graphs=[cora]", "--set", "knn_graphs=[citeseer]"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "skipped dataset" in line]
    assert len(warnings) == 2 and "planetoid/ind.citeseer" in warnings[0] and "planetoid-cora:" in warnings[1]
    assert all(line.startswith("warning: skipped dataset planetoid-") for line in warnings)
    results = json.loads((tmp_path / "x" / "results.json").read_text())
    skipped = {claim["id"] for claim in results["claims_not_evaluated"]}
    assert {"cora_lds_beats_gcn_full_graph", "knn_lds_beats_knn_gcn_citeseer_knn"} <= skipped
    assert "wine_acc_lds" in results["metrics"]


@pytest.mark.slow
def test_a_run_reports_progress_inside_its_units(tmp_path, monkeypatch):
    """The baselines and every LDS run inside a unit print progress with an ETA (issue 20: kNN-LDS on Cora's
    features was silent for minutes); the outer loop's ETA is an upper bound (early stopping)."""
    from reprolab.core import progress as progress_module

    monkeypatch.setenv("REPROLAB_PROGRESS", "plain")
    monkeypatch.setenv("REPROLAB_PROGRESS_EVERY", "0")
    monkeypatch.setattr(progress_module, "_MIN_LOOP_S", 0.0)
    args = ["run", "lds", "--out", str(tmp_path / "run")]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "lds: wine/s0/baselines: models fitted: 1/" in result.output
    assert "lds: wine/s0/lds: grid points: 1/1 (100%)" in result.output
    outer = "lds: wine/s0/lds k=10 cosine tau=5 outer_lr=0.1: outer iterations (<= 2, early stopping): 1/2"
    assert outer in result.output
