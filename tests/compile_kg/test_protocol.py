"""GraIL's sampled protocol (49 with replacement, support filter, argsort ties), CoMPILE's edge update,
best-validation selection and the twelve splits by name."""

from __future__ import annotations

import numpy as np
import torch

from reprolab.compile_kg.data import family_inductive_split, write_grail_split
from reprolab.compile_kg.evaluate import grail_rank, sample_protocol
from reprolab.compile_kg.experiment import EXPERIMENT, GRAIL_DATASETS, PAPER_METRICS, CompileConfig
from reprolab.compile_kg.model import CoMPILE
from reprolab.compile_kg.pipeline import load_split
from reprolab.compile_kg.subgraph import SubgraphExtractor


def test_grail_rank_is_the_position_of_the_true_triple_in_the_reversed_argsort():
    assert grail_rank(0.5, np.array([0.9, 0.1, 0.7])) == 3.0
    assert grail_rank(1.0, np.array([0.2, 0.3])) == 1.0
    scores = np.array([0.5, 0.5, 0.1])  # ties fall where argsort puts them: rank 1, 2 or 3
    assert grail_rank(0.5, scores) in (1.0, 2.0, 3.0)


def test_grail_negatives_are_49_per_side_with_replacement_and_filtered_against_the_support_graph():
    split = family_inductive_split(train_families=4, ind_families=2, seed=1)
    known = split.ind_graph.known()
    entities = np.arange(split.ind_graph.num_entities)
    protocol = sample_protocol(split.ind_test[:10], entities, known, np.random.default_rng(0))
    assert protocol.head_candidates.shape == (10, 49)
    for (h, r, t), heads, tails in zip(protocol.test.tolist(), protocol.head_candidates, protocol.tail_candidates):
        assert all((e, r, t) not in known and e != t for e in heads.tolist())
        assert all((h, r, e) not in known and e != h for e in tails.tolist())
    # with replacement among ~30 entities, 49 draws repeat entities
    assert any(len(set(row.tolist())) < 49 for row in protocol.head_candidates)
    old = sample_protocol(split.ind_test[:10], entities, split.ind_all_true(), np.random.default_rng(0),
                          num_negatives=20, replace=False, distinct_ends=False)  # fmt: skip
    assert all(len(set(row[row >= 0].tolist())) == (row >= 0).sum() for row in old.head_candidates)


def test_edge_update_scaled_differs_from_unscaled_with_the_same_weights():
    split = family_inductive_split(train_families=3, ind_families=2, seed=0)
    batch = SubgraphExtractor(split.train_graph, hops=2, directed=False)(split.train_graph.triples[:6])
    torch.manual_seed(0)
    scaled = CoMPILE(split.num_relations, 4, emb_dim=8, dropout=0.0).eval()
    unscaled = CoMPILE(split.num_relations, 4, emb_dim=8, dropout=0.0, edge_update="unscaled").eval()
    unscaled.load_state_dict(scaled.state_dict())
    assert scaled.edge_update == "scaled"
    assert not torch.allclose(scaled(batch), unscaled(batch))


def test_best_validation_checkpoint_is_kept_and_loaded(run_context):
    from reprolab.compile_kg.pipeline import _trained_model
    from reprolab.core.sweep import Sweep

    config = CompileConfig(train_families=3, ind_families=2, hops=2, emb_dim=8, rel_emb_dim=8, attn_rel_emb_dim=8,
                           models=["grail"], valid_every=5, steps=20, batch_size=8)  # fmt: skip
    split = load_split(config)
    ctx = run_context("compile_kg")
    sweep = Sweep(ctx)
    _trained_model(config, ctx, sweep, split, "grail", 0, 20)
    result = sweep.result("train/grail/0")
    assert result["best_step"] in (5, 10, 15, 20)
    assert "train/grail/0/best" not in sweep.done


def test_twelve_splits_have_paper_and_official_presets_and_paper_numbers():
    assert len(GRAIL_DATASETS) == 12
    for name in GRAIL_DATASETS:
        tag = name.lower()
        assert EXPERIMENT.presets[tag]["dataset"] == name
        assert EXPERIMENT.presets[tag]["compile_subgraph"] == "directed_fallback"
        assert EXPERIMENT.presets[f"{tag}_official"]["compile_subgraph"] == "undirected"
        assert 0.5 < PAPER_METRICS[f"{tag}_auc_pr_compile"] <= 1.0
    ids = {claim.id for claim in EXPERIMENT.claims}
    assert "nell_v1_compile_below_grail_auc_pr" in ids and "wn18rr_v3_compile_beats_grail_auc_pr" in ids


def test_paper_presets_train_grail_by_its_own_recipe_and_compile_by_its_own():
    """The GraIL numbers the CoMPILE paper compares with are GraIL's own runs (GraIL's train.py: Adam 0.01,
    100 epochs); CoMPILE trains at 1e-3 for 30 epochs. Quick keeps one shared recipe."""
    from reprolab.compile_kg.pipeline import _lr, _paper_protocol, _steps

    split = family_inductive_split(train_families=3, ind_families=2, seed=0)
    per_epoch = -(-len(split.train_targets) // 16)
    for preset in ("paper", "official_v1", "nell_v1", "fb237_v4_official"):
        config = CompileConfig(**EXPERIMENT.presets[preset])
        assert (_lr(config, "grail"), _lr(config, "compile")) == (0.01, 0.001)
        assert (_steps(config, split, "grail"), _steps(config, split, "compile")) == (100 * per_epoch, 30 * per_epoch)
    quick = CompileConfig()
    assert _lr(quick, "grail") == _lr(quick, "compile") == quick.lr
    assert _steps(quick, split, "grail") == _steps(quick, split, "compile") == quick.steps
    split.name = "nell_v1"
    paper = CompileConfig(**EXPERIMENT.presets["nell_v1"])
    assert _paper_protocol(paper, split)
    assert not _paper_protocol(CompileConfig(**{**EXPERIMENT.presets["nell_v1"], "grail_epochs": 30.0}), split)
    assert _paper_protocol(CompileConfig(**{**EXPERIMENT.presets["nell_v1"], "grail_epochs": 30.0,
                                            "models": ["compile"]}), split)  # fmt: skip


def test_a_v3_split_loads_by_name_when_present(tmp_path, run_context):
    split = family_inductive_split(train_families=3, ind_families=2, seed=0)
    split.name = "WN18RR_v3"
    write_grail_split(split, tmp_path / "data" / "grail_inductive")
    ctx = run_context("compile_kg")
    ctx.data_home = tmp_path / "data"
    loaded = load_split(CompileConfig(dataset="WN18RR_v3"), ctx)
    assert loaded.name == "WN18RR_v3" and len(loaded.ind_test) == len(split.ind_test)


def test_claim_units_are_trained_models_with_samplings_averaged_inside():
    """A unit is one trained pair (repeat r of GraIL with repeat r of CoMPILE); the seeded draws of negatives
    evaluate the same models, so they are averaged inside the unit, never units of their own (issue 18)."""
    from types import SimpleNamespace

    from reprolab.compile_kg.pipeline import _record_units

    recorded: dict[str, dict[str, float]] = {}
    ctx = SimpleNamespace(record_unit=lambda name, metrics: recorded.__setitem__(name, dict(metrics)))

    def repeat(auc_prs: list[float], reversal: float) -> dict:
        draws = [{"auc_pr": a, "hits10": 0.5, "mrr": 0.25} for a in auc_prs]
        return {"per_sampling": draws, "reversal_auc": reversal}

    results = {  # 2 repeats x 3 samplings per model
        "grail": [repeat([0.8, 0.7, 0.9], 0.6), repeat([0.6, 0.6, 0.6], 0.5)],
        "compile": [repeat([0.9, 0.9, 0.6], 0.7), repeat([0.5, 0.7, 0.6], 0.4)],
    }
    _record_units(ctx, SimpleNamespace(name="family"), results)
    assert sorted(recorded) == ["repeat0", "repeat1"]
    assert abs(recorded["repeat0"]["family_auc_pr_grail"] - 0.8) < 1e-12
    assert abs(recorded["repeat0"]["family_auc_pr_compile"] - 0.8) < 1e-12
    assert abs(recorded["repeat1"]["family_auc_pr_compile"] - 0.6) < 1e-12
    assert recorded["repeat1"]["reversal_auc_grail"] == 0.5


def test_subgraph_sizes_are_reported_and_large_ones_warned_before_training(run_context, capsys):
    """Issue 20: nell_v2's steps cost ~20x WN18RR_v2's because of its subgraphs; every run reports the sizes
    before training and warns on stderr above 500 edges per training subgraph (a dense split here)."""
    import numpy as np

    from reprolab.compile_kg.data import InductiveSplit, KnowledgeGraph
    from reprolab.compile_kg.pipeline import _subgraph_sizes

    ctx = run_context("compile_kg")
    small = family_inductive_split(train_families=3, ind_families=2, seed=0)
    metrics = _subgraph_sizes(CompileConfig(), ctx, small)
    assert metrics["subgraph_edges_mean_train_grail"] < 500 and "large subgraphs" not in capsys.readouterr().err
    n = 40  # every ordered pair linked: a 3-hop enclosing subgraph holds the whole graph
    triples = np.array([(h, 0, t) for h in range(n) for t in range(n) if h != t], dtype=np.int64)
    graph = KnowledgeGraph(triples, n, 1)
    dense = InductiveSplit("dense", ["r"], graph, triples, triples[:10], graph, triples[:10], triples[:50])
    metrics = _subgraph_sizes(CompileConfig(), ctx, dense)
    assert metrics["subgraph_edges_mean_train_grail"] > 500
    assert "compile_kg: dense has large subgraphs" in capsys.readouterr().err
    assert "Subgraph sizes (256 triples each" in ctx.notes[-1]


def test_subgraph_sizes_of_a_model_do_not_depend_on_the_other_models(run_context):
    """Every model sees the same sampled triples, so a run of one model (a half for `reprolab combine`) reports
    the sizes a joint run reports."""
    from reprolab.compile_kg.pipeline import _subgraph_sizes

    split = family_inductive_split(train_families=3, ind_families=2, seed=0)
    joint = _subgraph_sizes(CompileConfig(models=["grail", "compile"]), run_context("compile_kg"), split)
    alone = _subgraph_sizes(CompileConfig(models=["compile"]), run_context("compile_kg"), split)
    assert alone == {key: value for key, value in joint.items() if key.endswith("_compile")}
