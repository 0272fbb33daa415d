"""Tests of DRE: ellipsoid geometry, PSD shapes, frozen base embeddings, readers, ranking, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from reprolab.core.errors import ConfigError, DataError, DatasetMissingError
from reprolab.domain_kge.data import load_splits, read_triples
from reprolab.domain_kge.model import EllipsoidDomains, domain_distance, entity_space, quadratic_k
from reprolab.domain_kge.train import (
    build_base_model,
    domain_distances,
    evaluate,
    evaluate_protocols,
    fit_domains,
    rank_metrics,
    relation_categories,
    train_base_model,
    type_constraints,
)


def _axis_ellipsoid(a: float, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre (1, 2) and L with k = 2 x^T L^T L x = (x/a)^2 + (y/b)^2."""
    center = torch.tensor([1.0, 2.0])
    factor = torch.diag(torch.tensor([1.0 / (a * 2**0.5), 1.0 / (b * 2**0.5)]))
    return center, factor


def test_distance_zero_on_surface_and_inside_positive_outside():
    center, factor = _axis_ellipsoid(2.0, 1.0)
    surface = center + torch.tensor([[2.0, 0.0], [0.0, -1.0], [2.0 * 0.6, 1.0 * 0.8]])
    assert torch.allclose(quadratic_k(surface, center, factor), torch.ones(3), atol=1e-6)
    assert torch.allclose(domain_distance(surface, center, factor), torch.zeros(3), atol=1e-10)
    inside = center + torch.tensor([[0.5, 0.1]])
    assert domain_distance(inside, center, factor).item() == 0.0
    assert domain_distance(inside, center, factor, clamp_inside=False).item() > 0.0
    # hand-computed: (4, 0) from the centre, surface at (2, 0): squared distance 4
    outside = center + torch.tensor([[4.0, 0.0]])
    assert domain_distance(outside, center, factor).item() == pytest.approx(4.0, rel=1e-6)


def test_shape_matrix_psd_and_upper_triangular_factor():
    torch.manual_seed(0)
    domains = EllipsoidDomains(3, 4)
    with torch.no_grad():
        domains.raw_factor.normal_()
    assert torch.equal(domains.factor, torch.triu(domains.factor))
    eigenvalues = torch.linalg.eigvalsh(domains.shape_matrix())
    assert eigenvalues.min() >= -1e-5
    assert domains.shape_matrix().shape == (3, 2, 4, 4)


def test_gradients_reach_centre_and_factor():
    domains = EllipsoidDomains(2, 3)
    x = torch.randn(5, 3) * 3
    loss = domains.distance(x, 1, 0, clamp_inside=False).sum()
    loss.backward()
    assert domains.center.grad[1, 0].abs().sum() > 0
    assert domains.raw_factor.grad[1, 0].abs().sum() > 0
    assert domains.center.grad[0].abs().sum() == 0


def test_bad_domain_sizes():
    with pytest.raises(ConfigError):
        EllipsoidDomains(0, 3)


def test_reader_errors_name_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a\tr\tb\n\nc\tr\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.txt:3:"):
        read_triples(path)
    path.write_text("a\t\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.txt:1:"):
        read_triples(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="no triples"):
        read_triples(path)
    with pytest.raises(DatasetMissingError):
        read_triples(tmp_path / "absent.txt")


def _toy_folder(tmp_path):
    train = ["a\tlikes\tb", "b\tlikes\tc", "c\tlikes\ta", "a\tknows\tc", "d\tknows\ta", "b\tknows\td"]
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("a\tlikes\tc\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("d\tlikes\tb\nc\tknows\tb\n", encoding="utf-8")
    return tmp_path


def test_folder_reader_shares_vocabulary(tmp_path):
    splits = load_splits(_toy_folder(tmp_path))
    assert splits.training.num_entities == 4 and splits.training.num_relations == 2
    assert splits.testing.entity_to_id == splits.training.entity_to_id
    assert splits.testing.num_triples == 2
    with pytest.raises(DatasetMissingError, match="valid.txt"):
        (tmp_path / "valid.txt").unlink()
        load_splits(tmp_path)


def test_embedded_reader_matches_pykeen_counts():
    splits = load_splits("nations")
    assert (splits.training.num_triples, splits.validation.num_triples, splits.testing.num_triples) == (
        1592,
        199,
        201,
    )
    assert splits.training.num_entities == 14 and splits.training.num_relations == 55


def test_domains_never_change_base_embeddings_and_improve_fit(tmp_path):
    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("TransE", splits, dim=4, seed=0)
    train_base_model(model, splits, epochs=2, batch_size=4, lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    domains, losses = fit_domains(model, splits.training.mapped_triples, 2, epochs=30, lr=0.05)
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters()) or all(
        p.grad is None or p.grad.abs().sum() == 0 for p in model.parameters()
    )
    distances = domain_distances(model, domains, 2)
    assert distances.shape == (2, 2, 4) and (distances >= 0).all()


def test_filtered_ranks_and_domain_variants(tmp_path):
    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("TransE", splits, dim=4, seed=0)
    num_entities = splits.training.num_entities
    ranks = evaluate(model, splits, None)
    assert set(ranks) == {"base"}
    for side in ("head", "tail"):
        assert ranks["base"][side].shape == (2,)
        assert ((ranks["base"][side] >= 1) & (ranks["base"][side] <= num_entities)).all()
    # a huge distance for every entity except the true ones forces rank 1 under the "both" variant
    test = splits.testing.mapped_triples
    distances = torch.full((2, 2, num_entities), 1e6)
    for h, r, t in test.tolist():
        distances[r, 0, h] = 0.0
        distances[r, 1, t] = 0.0
    ranks = evaluate(model, splits, distances)
    assert set(ranks) == {"base", "head", "both"}
    np.testing.assert_allclose(ranks["both"]["head"], 1.0)
    np.testing.assert_allclose(ranks["both"]["tail"], 1.0)
    np.testing.assert_allclose(ranks["head"]["head"], 1.0)
    np.testing.assert_allclose(ranks["head"]["tail"], ranks["base"]["tail"])  # d_h is constant over tails


def test_type_constraints_by_hand_and_constrained_ranks(tmp_path):
    triples = np.array([[0, 0, 1], [2, 0, 1], [1, 1, 3]])
    allowed = type_constraints(triples, num_relations=2, num_entities=4)
    assert allowed[0, 0].tolist() == [True, False, True, False]  # heads of relation 0
    assert allowed[0, 1].tolist() == [False, True, False, False]
    assert allowed[1, 0].tolist() == [False, True, False, False]
    assert allowed[1, 1].tolist() == [False, False, False, True]

    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("TransE", splits, dim=4, seed=0)
    raw = evaluate(model, splits, None)["base"]
    everyone = torch.ones(2, 2, splits.training.num_entities, dtype=torch.bool)
    same = evaluate(model, splits, None, allowed=everyone)["base"]
    for side in ("head", "tail"):
        np.testing.assert_allclose(same[side], raw[side])  # no constraint: the raw ranks
    nobody = torch.zeros_like(everyone)
    alone = evaluate(model, splits, None, allowed=nobody)["base"]
    for side in ("head", "tail"):
        np.testing.assert_allclose(alone[side], 1.0)  # only the true entity is ranked


def test_extra_base_models_must_differ():
    from reprolab.domain_kge.experiment import DomainKGEConfig

    with pytest.raises(ConfigError, match="extra_base_models"):
        DomainKGEConfig(base_model="TransE", extra_base_models=["transe"]).validate()


def test_rank_metrics_and_categories():
    metrics = rank_metrics(np.array([1.0, 2.0, 4.0, 20.0]))
    assert metrics["mr"] == pytest.approx(6.75)
    assert metrics["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert metrics["hits1"] == 0.25 and metrics["hits3"] == 0.5 and metrics["hits10"] == 0.75
    triples = np.array([[0, 0, 1], [2, 0, 3], [0, 1, 1], [0, 1, 2], [0, 1, 3], [1, 2, 0], [2, 2, 0], [3, 2, 0]])
    assert relation_categories(triples, 4) == ["1-1", "1-N", "N-1", "1-1"]


def test_transr_domains_live_in_projected_space(tmp_path):
    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("TransR", splits, dim=4, seed=0, relation_dim=3)
    heads, _ = entity_space(model, 0)
    assert heads.shape == (4, 3)
    domains, _ = fit_domains(model, splits.training.mapped_triples, 2, epochs=2, lr=0.01)
    assert domains.dim == 3


def test_stranse_score_by_hand_and_role_specific_domain_spaces(tmp_path):
    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("STransE", splits, dim=3, seed=0)
    entities = model.entity_representations[0](indices=None).detach()
    translation = model.relation_representations[0](indices=None).detach()
    w_head = model.relation_representations[1](indices=None).detach()
    assert torch.equal(w_head[0], torch.eye(3))  # identity start: an untrained STransE is a TransE
    with torch.no_grad():
        model.relation_representations[1]._embeddings.weight[0] = 2 * torch.eye(3).flatten()
    h, r, t = 0, 0, 1
    expected = -(2 * entities[h] + translation[r] - entities[t]).abs().sum()  # -||W1 h + r - W2 t||_1
    score = model.score_hrt(torch.tensor([[h, r, t]])).squeeze()
    assert torch.allclose(score, expected, atol=1e-6)
    heads, tails = entity_space(model, 0)
    assert torch.allclose(heads, 2 * entities) and torch.allclose(tails, entities)
    domains, _ = fit_domains(model, splits.training.mapped_triples, 2, epochs=2, lr=0.01)
    assert domains.dim == 3
    train_base_model(model, splits, epochs=1, batch_size=4, lr=0.01)
    assert model.entity_representations[0](indices=None).norm(dim=-1).max() <= 1 + 1e-5  # unit-ball constraint


def test_unknown_base_model(tmp_path):
    with pytest.raises(ConfigError, match="base_model"):
        build_base_model("NoSuchModel", load_splits(_toy_folder(tmp_path)), dim=4, seed=0)


def test_real_wn18rr_reader(real_data):
    splits = load_splits(real_data("WN18RR"))
    assert splits.training.num_triples == 86835 and splits.testing.num_triples == 3134
    assert splits.training.num_relations == 11


@pytest.mark.slow
def test_cli_quick_run(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "reprolab",
        "run",
        "domain_kge",
        "--set",
        "datasets=[nations]",
        "--set",
        "epochs=3",
        "--set",
        "domain_epochs=10",
        "--set",
        "dim=16",
        "--out",
        str(out),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900)  # wall: shared machines
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "domain_kge"
    metrics = results["metrics"]
    for variant in ("base", "head", "both"):
        assert 0.0 <= metrics[f"nations_{variant}_hits10"] <= 1.0
        assert metrics[f"nations_{variant}_mr"] >= 1.0
        # type-constrained ranks are never worse than the raw ones
        assert metrics[f"nations_tc_{variant}_mr"] <= metrics[f"nations_{variant}_mr"] + 1e-9
    ids = {claim["id"] for claim in results["claims"]}
    assert {"nations_hits10_improves", "nations_mr_improves", "domain_fit_is_cheap"} <= ids
    assert "umls_hits10_improves" in {claim["id"] for claim in results["claims_not_evaluated"]}
    assert (out / "figures").is_dir() and any((out / "figures").iterdir())
    _saved_models_rank_as_in_the_run(out, metrics)


def _saved_models_rank_as_in_the_run(out, metrics) -> None:
    """models/base and models/domains, rebuilt by load_run, give the run's filtered ranks of every variant."""
    import reprolab
    from reprolab.domain_kge.pipeline import _summarise

    run = reprolab.load_run(out)
    assert set(run.models) == {"base", "domains"}
    model, domains = run.model("base"), run.model("domains")
    splits = load_splits("nations")
    distances = domain_distances(model, domains, splits.training.num_relations)
    config = run.config
    ranks = evaluate(model, splits, distances, weight=config["domain_weight"], batch_size=config["eval_batch_size"])
    summary = _summarise(splits, ranks, "nations")["metrics"]
    for variant in ("base", "head", "both"):
        assert summary[f"nations_{variant}_mrr"] == pytest.approx(metrics[f"nations_{variant}_mrr"], abs=1e-12)


def test_padded_and_looped_fit_losses_agree(tmp_path):
    from reprolab.domain_kge.train import _looped_loss, _members, _padded_loss

    splits = load_splits(_toy_folder(tmp_path))
    model = build_base_model("TransE", splits, dim=4, seed=0)
    groups = _members(model, splits.training.mapped_triples, 2)
    domains = EllipsoidDomains(2, 4)
    with torch.no_grad():
        domains.raw_factor.normal_()
        domains.center.normal_()
    width = max(v.shape[0] for _, _, v, _ in groups)
    padded = _padded_loss(groups, width, 4)(domains)
    looped = _looped_loss(groups)(domains)
    assert padded.item() == pytest.approx(looped.item(), rel=1e-5)
    # the count-weighted member sum equals the per-triple sum of d_h + d_t
    triples = splits.training.mapped_triples
    heads, tails = entity_space(model)
    d_h, d_t = domains.pair_distance(heads[triples[:, 0]], tails[triples[:, 2]], triples[:, 1], clamp_inside=False)
    assert looped.item() == pytest.approx((d_h + d_t).sum().item(), rel=1e-5)


def _reference_ranks(model, splits, side):
    """Filtered realistic ranks by PyKEEN's own all-candidate scoring and a masked copy (the slow reference)."""
    test = splits.testing.mapped_triples
    everything = torch.cat([splits.training.mapped_triples, splits.validation.mapped_triples, test])
    ranks = []
    for h, r, t in test.tolist():
        if side == "tail":
            scores = model.score_t(torch.tensor([[h, r]])).float()[0]
            known = everything[(everything[:, 0] == h) & (everything[:, 1] == r), 2]
            target = t
        else:
            scores = model.score_h(torch.tensor([[r, t]])).float()[0]
            known = everything[(everything[:, 2] == t) & (everything[:, 1] == r), 0]
            target = h
        true = scores[target].clone()
        scores[known] = -float("inf")
        scores[target] = true
        ranks.append(0.5 * ((scores > true).sum() + 1.0) + 0.5 * (scores >= true).sum())
    return np.asarray(ranks, dtype=float)


@pytest.mark.parametrize("name", ["TransE", "TransR", "STransE"])
def test_vectorised_ranks_equal_pykeen_scoring(name):
    """The cdist fast path (candidate tables per relation) ranks exactly as PyKEEN's score_h / score_t."""
    splits = load_splits("nations")
    model = build_base_model(name, splits, dim=8, seed=0)
    train_base_model(model, splits, epochs=1, batch_size=512, lr=0.01)
    ranks = evaluate_protocols(model, splits, None, protocols=("filtered", "raw"), batch_size=64)
    for side in ("head", "tail"):
        np.testing.assert_allclose(ranks["filtered"]["base"][side], _reference_ranks(model, splits, side))
        assert (ranks["raw"]["base"][side] >= ranks["filtered"]["base"][side]).all()


def test_official_k_counts_cross_terms_once():
    factor = torch.tensor([[1.0, 0.5], [0.0, 2.0]])
    center, x = torch.zeros(2), torch.tensor([[0.3, -0.7]])
    m = factor.T @ factor
    expected = x[0] @ (m + torch.diag(torch.diag(m))) @ x[0]
    assert quadratic_k(x, center, factor, form="official").item() == pytest.approx(expected.item(), rel=1e-6)
    assert quadratic_k(x, center, factor).item() == pytest.approx((2 * x[0] @ m @ x[0]).item(), rel=1e-6)
    diagonal = torch.diag(torch.tensor([0.4, 1.3]))
    assert torch.allclose(quadratic_k(x, center, diagonal, form="official"), quadratic_k(x, center, diagonal))


def test_paper_sets_have_presets_per_base_model_and_fb15k_absent_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from reprolab.cli import app
    from reprolab.domain_kge.experiment import PRESETS, DomainKGEConfig

    for ds in ("wn18", "fb15k"):
        for model in ("transe", "transr", "stranse"):
            DomainKGEConfig(**PRESETS[f"{ds}_{model}"]).validate()
    assert PRESETS["official"]["k_form"] == "official" and PRESETS["paper"].get("k_form", "paper") == "paper"
    result = CliRunner().invoke(
        app, ["run", "domain_kge", "--preset", "fb15k_transe", "--data", str(tmp_path), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "FB15k" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # no warning before the error: one line
    assert "FB15k/{train,valid,test}.txt" in result.output and not (tmp_path / "x").exists()


def test_filtered_negatives_never_train_a_true_triple_as_a_negative():
    """The `official` preset's `filtered_negatives`: corruptions that are training triples are dropped (the
    official sampler redraws them); unfiltered, a dense graph yields some (audit of issue 20)."""
    from pykeen.sampling import BasicNegativeSampler

    from reprolab.domain_kge.train import negative_sampler_kwargs

    n = 6  # every (h, 0, t) with h != t is true: most corruptions hit a training triple
    triples = torch.tensor([(h, 0, t) for h in range(n) for t in range(n) if h != t], dtype=torch.long)
    known = {tuple(row) for row in triples.tolist()}
    torch.manual_seed(0)
    for filtered in (False, True):
        sampler = BasicNegativeSampler(mapped_triples=triples, num_entities=n, num_relations=1,
                                       **negative_sampler_kwargs(8, filtered))
        negatives, mask = sampler.sample(triples)
        kept = negatives.view(-1, 3) if mask is None else negatives.view(-1, 3)[mask.view(-1)]
        hits = sum(tuple(row) in known for row in kept.tolist())
        assert (hits == 0) if filtered else (hits > 0)
