"""Config validation, model selection, and one short end-to-end CLI run checking results.json."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import resolve_config
from reprolab.core.errors import ConfigError
from reprolab.diffpool.experiment import PRESETS, DiffPoolConfig
from reprolab.diffpool.train import FoldHistory, build_model


def test_presets_resolve_and_paper_preset_uses_the_official_enzymes_command():
    config = resolve_config(DiffPoolConfig, PRESETS, "paper")
    assert (config.dataset, config.hidden, config.embed, config.assign_ratio) == ("ENZYMES", 30, 30, 0.1)
    assert (config.batch_size, config.lr, config.clip, config.epochs, config.folds) == (20, 1e-3, 2.0, 1000, 10)
    assert (config.features, config.link_loss, config.entropy_loss, config.cluster_nodes) == ("labels", True, True, 0)
    official = resolve_config(DiffPoolConfig, PRESETS, "official_script")
    assert (official.cluster_nodes, official.link_loss, official.entropy_loss) == (1000, False, False)
    assert (official.conv, official.assign_normalize) == ("official_sum", True)  # RexYing/diffpool GraphConv
    assert (config.conv, config.assign_normalize) == ("sage_mean", False)  # the paper's GraphSAGE-mean
    assert resolve_config(DiffPoolConfig, PRESETS, "quick").run_folds == 3


def test_changing_the_dataset_without_its_preset_warns_in_one_line():
    from reprolab.diffpool.experiment import settings_warning

    quick = resolve_config(DiffPoolConfig, PRESETS, "quick", {"dataset": "PROTEINS"})
    assert "paper_proteins" in settings_warning(quick) and "\n" not in settings_warning(quick)
    assert settings_warning(resolve_config(DiffPoolConfig, PRESETS, "paper_proteins")) is None
    assert settings_warning(resolve_config(DiffPoolConfig, PRESETS, "quick")) is None
    # a TU set with no preset of its own: the line names none that does not exist
    imdb = settings_warning(resolve_config(DiffPoolConfig, PRESETS, "quick", {"dataset": "IMDB-BINARY"}))
    assert "no preset is chosen for it" in imdb and "paper_imdb" not in imdb


def test_cli_reports_an_absent_dataset_as_its_one_line_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(app, [
        "run", "diffpool", "--set", "dataset=NOPE", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
    ])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "NOPE" in lines[0] and "10fold_idx" in lines[0]  # names the two layouts
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"models": ["diffpool", "gin"]}, "models: unknown model 'gin'"),
        ({"run_folds": 11}, "run_folds"),
        ({"assign_ratio": 1.5}, "assign_ratio"),
        ({"features": "colour"}, "features"),
        ({"conv": "gin"}, "conv: 'gin' is not one of"),
        ({"community_size": [5, 3]}, "community_size"),
        ({"communities": [6, 2]}, "communities"),
        ({"batch_size": 1}, "batch_size"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(DiffPoolConfig, PRESETS, "quick", override)


def test_model_selection_takes_the_test_accuracy_at_the_best_validation_epoch():
    history = FoldHistory(epochs=[1, 2, 3, 4], loss=[1, 1, 1, 1], val_acc=[0.2, 0.6, 0.6, 0.4],
                          test_acc=[0.1, 0.3, 0.5, 0.9])
    assert history.selected() == (3, 0.5)  # ties go to the later epoch; never peeks at the test curve


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("gcn", 3, 2, 10)


@pytest.mark.slow
def test_cli_quick_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "diffpool", "--set", "num_graphs=36", "--set", "epochs=2", "--set", "run_folds=2",
        "--set", "models=[diffpool,diffpool_nolp,graphsage_mean]", "--set", "assignment_graphs=2",
        "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    metrics = results["metrics"]
    for name in ("diffpool", "diffpool_nolp", "graphsage_mean"):
        assert 0.0 <= metrics[f"synthetic_{name}_acc"] <= 100.0
        assert metrics[f"synthetic_{name}_acc_std"] >= 0.0
    assert metrics["synthetic_folds_run"] == 2
    assert set(results["units"]) == {"fold0", "fold1"}  # folds are the claims' units
    assert set(results["units"]["fold0"]) == {f"synthetic_{name}_acc" for name in ("diffpool", "diffpool_nolp",
                                                                                  "graphsage_mean")}
    assert "synthetic_diffpool_beats_graphsage_mean" in {claim["id"] for claim in results["claims"]}
    assert {c["id"] for c in results["claims_not_evaluated"]} >= {"enzymes_diffpool_reaches_paper"}
    assert (out / "figures" / "learning_curves.png").is_file()
    assert (out / "figures" / "cluster_assignments.png").is_file()
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(record.get("unit") == "fold1/graphsage_mean" and record.get("epoch") == 2 for record in epochs)
    _saved_models_predict_as_in_the_run(out, results, epochs)


def test_a_kernels_only_run_draws_no_empty_learning_curves(tmp_path, recwarn):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", "diffpool", "--set", "num_graphs=36", "--set", "run_folds=2", "--set", "models=[wl]", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "results.json").read_text())["metrics"]["synthetic_wl_acc"] >= 0.0
    assert not (out / "figures" / "learning_curves.png").exists()
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]


def _saved_models_predict_as_in_the_run(out, results, records) -> None:
    """models/<name>: fold 0's model after its last epoch; rebuilt, it gives that epoch's test accuracy on the fold's
    test graphs standardised with the statistics in its card."""
    import reprolab
    from reprolab.core.seeding import derive_seed
    from reprolab.diffpool.data import GraphSet, make_hierarchical_communities
    from reprolab.diffpool.train import evaluate

    run = reprolab.load_run(out)
    assert set(run.models) == {"diffpool", "diffpool_nolp", "graphsage_mean"}
    config = run.config
    graphs = make_hierarchical_communities(
        config["num_graphs"], communities=tuple(config["communities"]), community_size=tuple(config["community_size"]),
        seed=derive_seed(results["seed"], "synthetic-data"),
    )
    for name in run.models:
        meta = json.loads((out / "models" / f"{name}.json").read_text())["meta"]
        test = graphs.subset(meta["test_index"])
        mean, std = torch.tensor(meta["feature_mean"]), torch.tensor(meta["feature_std"])
        test = GraphSet(test.name, test.edges, [(x - mean) / std for x in test.x], test.y, test.class_names)
        logged = [r["test_acc"] for r in records if r.get("unit") == f"fold0/{name}" and r.get("epoch") == 2]
        assert evaluate(run.model(name), test) == pytest.approx(logged[-1], abs=1e-12) == meta["last_epoch_test_acc"]


class _InterruptedError(Exception):
    pass


def test_a_fold_killed_mid_training_resumes_to_the_same_metrics(tmp_path, monkeypatch):
    from reprolab.core.runner import run_experiment
    from reprolab.diffpool import train

    overrides = {"num_graphs": 30, "epochs": 5, "run_folds": 1, "models": ["diffpool"], "checkpoint_every": 2,
                 "assignment_graphs": 0, "batch_size": 8}
    straight = run_experiment("diffpool", "quick", overrides, out=tmp_path / "straight")

    real_evaluate, calls = train.evaluate, {"n": 0}

    def failing_evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # during epoch 4, after the epoch-2 checkpoint
            raise _InterruptedError
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", failing_evaluate)
    with pytest.raises(_InterruptedError):
        run_experiment("diffpool", "quick", overrides, out=tmp_path / "resumed")
    monkeypatch.setattr(train, "evaluate", real_evaluate)
    resumed = run_experiment("diffpool", "quick", overrides, out=tmp_path / "resumed", resume=True)
    assert resumed["metrics"] == straight["metrics"]
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines if '"epoch"' in line]
    assert epochs == [1, 2, 3, 4, 5]


def test_registration_module_imports_no_graph_library():
    import subprocess
    import sys

    code = "import sys, reprolab.diffpool.experiment; print('torch_geometric' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_max_nodes_filter_keeps_the_datasets_own_folds_renumbered():
    import torch

    from reprolab.diffpool.data import make_hierarchical_communities
    from reprolab.diffpool.pipeline import _filter_large

    graphs = make_hierarchical_communities(12, seed=0)
    graphs.folds = [torch.arange(k, 12, 3) for k in range(3)]
    limit = sorted(graphs.num_nodes())[8]
    notes = []
    ctx = type("Ctx", (), {"note": staticmethod(notes.append)})()
    config = DiffPoolConfig(max_nodes=limit)
    kept = _filter_large(graphs, config, ctx)
    assert kept.max_nodes <= limit and kept.folds is not None
    assert sorted(torch.cat(kept.folds).tolist()) == list(range(len(kept)))
    for fold_old, fold_new in zip(graphs.folds, kept.folds):
        assert [graphs.num_nodes()[g] for g in fold_old.tolist() if graphs.num_nodes()[g] <= limit] == \
            [kept.num_nodes()[g] for g in fold_new.tolist()]


def test_kernel_labels_reuse_the_label_features_and_the_size_filter_notes_once(monkeypatch):
    """With features=labels the kernels start from the networks' own inputs (no second read of the data set, which
    also noted the max_nodes drop twice in the report)."""
    from reprolab.diffpool import pipeline
    from reprolab.diffpool.data import make_hierarchical_communities
    from reprolab.diffpool.kernels import initial_labels

    graphs = make_hierarchical_communities(12, seed=0)
    notes: list[str] = []
    ctx = type("Ctx", (), {"note": staticmethod(notes.append)})()

    def no_second_read(*args, **kwargs):
        raise AssertionError("the data set was read a second time")

    monkeypatch.setattr(pipeline, "load_graphs", no_second_read)
    config = DiffPoolConfig(dataset="DD", features="labels", max_nodes=sorted(graphs.num_nodes())[8])
    got, expected = pipeline._kernel_labels(config, ctx, graphs), initial_labels(graphs.x)
    assert len(got) == len(expected) and all((a == b).all() for a, b in zip(got, expected))
    pipeline._filter_large(graphs, config, ctx, note=False)
    assert notes == []
    pipeline._filter_large(graphs, config, ctx)
    dropped = sum(n > config.max_nodes for n in graphs.num_nodes())
    assert notes == [f"Dropped {dropped} graphs with more than max_nodes={config.max_nodes} nodes."]
