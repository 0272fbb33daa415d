"""The paper's further Table-1 baselines (SVMs, random forest, label propagation): selection on validation only,
determinism, label propagation on a graph it must solve, and a baselines-only run through the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import ConfigError
from reprolab.lds.baselines import label_propagation, linear_svm, random_forest, rbf_svm
from reprolab.lds.data import GraphData, knn_graph, load_uci
from reprolab.lds.experiment import LDSConfig


@pytest.fixture(scope="module")
def wine() -> GraphData:
    return load_uci("wine", seed=0)


def _scramble_test_labels(data: GraphData) -> GraphData:
    labels = data.labels.clone()
    labels[data.test_mask] = (labels[data.test_mask] + 1) % data.num_classes
    return replace(data, labels=labels)


@pytest.mark.parametrize("fit", [linear_svm, rbf_svm, lambda d: random_forest(d, seed=3, trees=(10,)),
                                 lambda d: label_propagation(d, knn_graph(d.features, 10, "cosine"))],
                         ids=["linear_svm", "rbf_svm", "rf", "lp"])
def test_selection_never_sees_test_labels(wine, fit):
    select, test = fit(wine)
    assert 0.0 <= select <= 1.0 and 0.5 < test <= 1.0  # far above chance (1/3) on Wine
    scrambled_select, scrambled_test = fit(_scramble_test_labels(wine))
    assert scrambled_select == select  # the choice and its validation score ignore the test labels ...
    assert scrambled_test < test  # ... which only the reported test accuracy reads


def test_random_forest_is_deterministic_per_seed(wine):
    assert random_forest(wine, seed=5, trees=(10,)) == random_forest(wine, seed=5, trees=(10,))


def test_label_propagation_fills_connected_components():
    """Two disjoint triangles, one labelled node in each: propagation labels every node of its component."""
    adjacency = torch.zeros(6, 6)
    for a, b in ((0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)):
        adjacency[a, b] = adjacency[b, a] = 1.0
    masks = [torch.tensor(m, dtype=torch.bool) for m in (
        [1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1])]
    data = GraphData("toy", torch.zeros(6, 2), torch.tensor([0, 0, 0, 1, 1, 1]), *masks)
    assert label_propagation(data, adjacency) == (1.0, 1.0)


def test_unknown_extra_baseline_is_a_config_error():
    with pytest.raises(ConfigError, match="extra_baselines"):
        LDSConfig(extra_baselines=["svm"]).validate()


@pytest.mark.slow
def test_baselines_only_run(tmp_path):
    """Every Table-1 baseline on one Wine split without kNN-LDS: metrics written, the LDS claims not evaluated."""
    out = tmp_path / "run"
    args = ["run", "lds", "--seed", "0", "--out", str(out)]
    for item in ("tables=[wine]", "seeds=1", "gcn_epochs=10", "baselines_only=true",
                 "extra_baselines=[linear_svm,rbf_svm,rf,lp]"):
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    metrics = results["metrics"]
    for method in ("logreg", "mlp", "knn_gcn", "linear_svm", "rbf_svm", "rf", "lp"):
        assert 0.0 <= metrics[f"wine_acc_{method}"] <= 100.0
    assert metrics["wine_acc_baselines_best"] == max(
        metrics[f"wine_acc_{m}"] for m in ("logreg", "mlp", "knn_gcn", "linear_svm", "rbf_svm", "rf", "lp"))
    assert "wine_acc_lds" not in metrics
    skipped = {claim["id"] for claim in results["claims_not_evaluated"]}
    assert "knn_lds_beats_table1_baselines_wine" in skipped
