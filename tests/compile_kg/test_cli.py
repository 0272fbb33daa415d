"""One short end-to-end run through the CLI, checking results.json, figures and bad-config errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from reprolab.cli import app

CPU = torch.device("cpu")
SHRINK = [
    "--set", "train_families=4", "--set", "ind_families=3", "--set", "steps=30", "--set", "hops=2",
    "--set", "emb_dim=8", "--set", "rel_emb_dim=8", "--set", "attn_rel_emb_dim=8", "--set", "samplings=2",
    "--set", "num_negatives=10", "--set", "repeats=1", "--set", "targeted_steps=20",
]


def test_quick_cli_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "compile_kg", *SHRINK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "compile_kg"
    metrics = results["metrics"]
    for model in ("grail", "compile"):
        for key in ("auc_pr", "hits10_sampled", "mrr_full", "hits1_full", "hits10_full"):
            value = metrics[f"{key}_{model}"]
            assert 0.0 <= value <= 1.0
        assert metrics[f"hits10_sampled_{model}_min"] <= metrics[f"hits10_sampled_{model}"]
        assert 0.0 <= metrics[f"auc_pr_direction_blind_{model}"] <= 1.0
    claim_ids = {c["id"] for c in results["claims"]} | {c["id"] for c in results["claims_not_evaluated"]}
    assert "compile_beats_grail_auc_pr" in claim_ids and "compile_separates_inverse" in claim_ids
    assert (out / "figures" / "training_curves.png").is_file()
    assert (out / "figures" / "score_distributions.png").is_file()
    _saved_models_score_as_in_the_run(out, metrics)


def _saved_models_score_as_in_the_run(out, metrics) -> None:
    """models/grail and models/compile, rebuilt by load_run, give the run's reversal ROC-AUC on the inductive graph."""
    import reprolab
    from reprolab.compile_kg.evaluate import reversal_auc
    from reprolab.compile_kg.experiment import CompileConfig
    from reprolab.compile_kg.pipeline import _reversal_triples, load_split, make_extractor
    from reprolab.compile_kg.train import score_triples

    run = reprolab.load_run(out)
    assert set(run.models) == {"grail", "compile"}
    config = CompileConfig(**run.config)
    split = load_split(config)
    reversals = _reversal_triples(split)
    for name in ("grail", "compile"):
        model, extractor = run.model(name), make_extractor(config, name, split, inductive=True)

        def score(triples, model=model, extractor=extractor):
            return score_triples(model, extractor, triples, batch_size=config.eval_batch_size, device=CPU)

        assert reversal_auc(reversals, score) == pytest.approx(metrics[f"reversal_auc_{name}"], abs=1e-12)


def test_bad_config_is_refused_with_the_field_name(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "compile_kg", "--set", "models=[grail,transe]", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code != 0
    assert "models" in result.output and "transe" in result.output


def test_every_preset_resolves_to_a_valid_config():
    from reprolab.compile_kg.experiment import EXPERIMENT
    from reprolab.core.config import resolve_config

    for preset in EXPERIMENT.presets:
        config = resolve_config(EXPERIMENT.config_cls, EXPERIMENT.presets, preset)
        config.validate()
    paper = resolve_config(EXPERIMENT.config_cls, EXPERIMENT.presets, "paper")
    assert (paper.hops, paper.emb_dim, paper.num_bases, paper.batch_size, paper.margin) == (3, 32, 4, 16, 10.0)


def test_compile_subgraph_selects_compiles_extractor_and_grail_stays_undirected():
    from reprolab.compile_kg.data import family_inductive_split
    from reprolab.compile_kg.experiment import COMPILE_SUBGRAPHS, CompileConfig
    from reprolab.compile_kg.pipeline import make_extractor

    split = family_inductive_split(train_families=2, ind_families=2)
    assert CompileConfig().compile_subgraph == "directed_fallback"
    for kind in COMPILE_SUBGRAPHS:
        config = CompileConfig(compile_subgraph=kind)
        assert make_extractor(config, "compile", split, inductive=True).kind == kind
        assert make_extractor(config, "grail", split, inductive=False).kind == "undirected"


def test_unknown_compile_subgraph_is_refused_with_the_field_name(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "compile_kg", "--set", "compile_subgraph=sideways", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code != 0
    assert "compile_subgraph" in result.output and "sideways" in result.output


def test_missing_real_dataset_names_the_expected_layout(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "compile_kg", "--preset", "nell_v1", "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code != 0
    assert "grail_inductive/NAME_ind" in result.output


def test_models_score_real_inductive_subgraphs(real_data):
    import torch

    from reprolab.compile_kg.data import load_grail_split
    from reprolab.compile_kg.experiment import CompileConfig
    from reprolab.compile_kg.pipeline import make_extractor, make_model

    split = load_grail_split(real_data("grail_inductive"), "nell_v1")
    config = CompileConfig(dataset="nell_v1", hops=2)
    for name in ("grail", "compile"):
        model = make_model(config, name, split.num_relations).eval()
        batch = make_extractor(config, name, split, inductive=True)(split.ind_test[:16])
        with torch.no_grad():
            scores = model(batch)
        assert scores.shape == (16,) and torch.isfinite(scores).all()
