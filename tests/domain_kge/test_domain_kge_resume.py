"""In-unit checkpoints of DRE: base training (PyKEEN's loop checkpointing, atomic file) and the domain fit resume
to the same weights, losses and metrics as an uninterrupted run; a kill mid-write leaves the last good file."""

from __future__ import annotations

import pytest
import torch

from reprolab.core.errors import CheckpointError
from reprolab.core.io import atomic_write
from reprolab.domain_kge import checkpoints
from reprolab.domain_kge.checkpoints import StageCheckpoint
from reprolab.domain_kge.data import load_splits
from reprolab.domain_kge.train import build_base_model, fit_domains, train_base_model

EPOCHS = 3


class _Killed(BaseException):
    """A kill: not an Exception, so nothing in PyKEEN or reprolab catches it."""


def _kill_during_save(monkeypatch, number: int) -> None:
    """The ``number``-th in-unit checkpoint write dies halfway through writing its bytes."""
    real_save, calls = checkpoints.save_checkpoint, {"n": 0}

    def half_written(handle) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise _Killed

    def dying_save(path, state, *, fingerprint):
        calls["n"] += 1
        if calls["n"] == number:
            atomic_write(path, half_written)
        return real_save(path, state, fingerprint=fingerprint)

    monkeypatch.setattr(checkpoints, "save_checkpoint", dying_save)


def _train(name: str, splits, checkpoint: StageCheckpoint | None) -> tuple[dict, list[float]]:
    torch.manual_seed(0)
    model = build_base_model(name, splits, dim=8, seed=3)
    losses = train_base_model(model, splits, epochs=EPOCHS, batch_size=256, lr=0.01, checkpoint=checkpoint)
    return model.state_dict(), losses


@pytest.mark.parametrize("name", ["TransE", "TransR", "STransE"])
def test_base_training_killed_mid_checkpoint_resumes_bit_identical(tmp_path, monkeypatch, name):
    splits = load_splits("nations")
    straight, straight_losses = _train(name, splits, None)
    stage = StageCheckpoint(tmp_path / "base-nations.pt", "abc", minutes=0)  # a checkpoint after every epoch
    _kill_during_save(monkeypatch, 2)  # killed while writing epoch 2's checkpoint
    with pytest.raises(_Killed):
        _train(name, splits, stage)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["base-nations.pt"]  # no temp file left, epoch 1's intact
    assert checkpoints.load_stage(stage)["epoch"] == 1
    resumed, resumed_losses = _train(name, splits, StageCheckpoint(stage.path, "abc", minutes=0))
    assert resumed_losses == straight_losses
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)
    with pytest.raises(CheckpointError, match="different configuration"):
        _train(name, splits, StageCheckpoint(stage.path, "another-run", minutes=0))


def test_domain_fit_killed_mid_checkpoint_resumes_bit_identical(tmp_path, monkeypatch):
    splits = load_splits("nations")
    model = build_base_model("TransE", splits, dim=8, seed=3)
    triples, relations = splits.training.mapped_triples, splits.training.num_relations
    straight, straight_losses = fit_domains(model, triples, relations, epochs=6, lr=0.05)
    stage = StageCheckpoint(tmp_path / "domains-nations.pt", "abc", minutes=0)
    _kill_during_save(monkeypatch, 4)
    with pytest.raises(_Killed):
        fit_domains(model, triples, relations, epochs=6, lr=0.05, checkpoint=stage)
    monkeypatch.undo()
    assert checkpoints.load_stage(stage)["step"] == 3
    resumed, resumed_losses = fit_domains(model, triples, relations, epochs=6, lr=0.05, checkpoint=stage)
    assert resumed_losses == straight_losses
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in straight.state_dict().items())
    stage.path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        fit_domains(model, triples, relations, epochs=6, lr=0.05, checkpoint=stage)


@pytest.mark.parametrize(("kill_at", "stage"), [(2, "base"), (5, "domains")])
def test_killed_run_resumes_to_the_same_metrics(tmp_path, monkeypatch, kill_at, stage):
    """The whole unit through the runner, killed while writing a checkpoint of base training (epoch 2 of 3) or of
    the domain fit (step 2, after base training's 3 saves): ``--resume`` gives the straight run's metrics."""
    from reprolab.core.runner import run_experiment

    overrides = {"datasets": ["nations"], "epochs": 3, "domain_epochs": 5, "dim": 8, "checkpoint_minutes": 0,
                 "type_constrained": False}
    straight = run_experiment("domain_kge", "quick", overrides, out=tmp_path / "straight")
    _kill_during_save(monkeypatch, kill_at)
    with pytest.raises(_Killed):
        run_experiment("domain_kge", "quick", overrides, out=tmp_path / "resumed")
    monkeypatch.undo()
    folder = tmp_path / "resumed" / "checkpoints"
    assert (folder / f"{stage}-nations.pt").is_file()
    (folder / f".{stage}-nations.pt.x1y2.tmp").write_bytes(b"PK")  # what a SIGKILL mid-write leaves behind
    resumed = run_experiment("domain_kge", "quick", overrides, out=tmp_path / "resumed", resume=True)
    timing = ("_s", "time_ratio")
    untimed = {k: v for k, v in straight["metrics"].items() if not k.endswith(timing)}
    assert {k: v for k, v in resumed["metrics"].items() if not k.endswith(timing)} == untimed
    assert not any(folder.glob("*nations.pt*"))  # removed once the unit is done, the killed write's temp file too


def test_absent_dataset_is_skipped_and_its_claims_not_evaluated(tmp_path):
    """An absent set (FB15k in `paper`) is one note at the start, its claims `not evaluated`; the present ones run."""
    from reprolab.core.runner import run_experiment

    overrides = {"datasets": ["nations", "FB15k"], "epochs": 1, "domain_epochs": 2, "dim": 8}
    results = run_experiment("domain_kge", "quick", overrides, out=tmp_path / "run", data=tmp_path)
    assert any(k.startswith("nations") for k in results["metrics"])
    assert not any(k.startswith("fb15k") for k in results["metrics"])
    assert any("Skipped dataset FB15k" in note and "FB15k" in note for note in results["notes"])


def test_run_with_every_dataset_absent_fails_before_training(tmp_path):
    """No dataset present: one line at the start (exit 2), no run folder left."""
    from typer.testing import CliRunner

    from reprolab.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "domain_kge", "--preset", "paper", "--data", str(tmp_path),
                                      "--out", str(out)])
    assert result.exit_code == 2 and "WN18" in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("name", ["TransR", "STransE"])
def test_transe_init_copies_vectors_and_sets_identity_matrices(name):
    """TransR / STransE start from TransE (Lin et al. 2015 Sec. 4; Nguyen et al. 2016 Sec. 2)."""
    from reprolab.domain_kge.data import load_splits
    from reprolab.domain_kge.train import build_base_model, initialise_from_transe

    splits = load_splits("nations")
    transe = build_base_model("TransE", splits, dim=6, seed=1)
    model = build_base_model(name, splits, dim=6, seed=2)
    initialise_from_transe(model, transe)
    assert torch.equal(model.entity_representations[0]._embeddings.weight,
                       transe.entity_representations[0]._embeddings.weight)
    assert torch.equal(model.relation_representations[0]._embeddings.weight,
                       transe.relation_representations[0]._embeddings.weight)
    for matrices in model.relation_representations[1:]:
        weight = matrices._embeddings.weight.view(-1, 6, 6)
        assert torch.equal(weight, torch.eye(6).expand_as(weight))
    before = [r._embeddings.weight.clone() for r in (*model.entity_representations, *model.relation_representations)]
    model._reset_parameters_()  # what PyKEEN's training loop does first: the TransE start must survive it
    after = [r._embeddings.weight for r in (*model.entity_representations, *model.relation_representations)]
    assert all(torch.equal(a, b) for a, b in zip(after, before))


@pytest.mark.parametrize("name", ["TransR", "STransE"])
def test_the_transe_start_already_meets_the_constraints_training_applies(name):
    """PyKEEN's training loop starts with ``reset_parameters_()``, which applies the model's constraints (||r|| <= 1
    for TransR / STransE): the TransE start is trained with the same relation ball, so the start survives it."""
    from reprolab.domain_kge.data import load_splits
    from reprolab.domain_kge.train import build_base_model, initialise_from_transe, train_base_model

    splits = load_splits("nations")
    transe = build_base_model("TransE", splits, dim=6, seed=1, relation_unit_ball=True)
    train_base_model(transe, splits, epochs=2, batch_size=256, lr=0.5)  # a large rate pushes relations outwards
    model = build_base_model(name, splits, dim=6, seed=2)
    initialise_from_transe(model, transe)
    before = [r._embeddings.weight.clone() for r in (*model.entity_representations, *model.relation_representations)]
    model.reset_parameters_()
    after = [r._embeddings.weight for r in (*model.entity_representations, *model.relation_representations)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(after, before))


def test_transr_at_its_transe_start_scores_as_that_transe():
    """Identity projections give back TransE only when the projected vectors are clamped into the L2 ball of Lin et
    al. (2015); PyKEEN's interaction clamps them into an L1 ball (the scoring norm)."""
    from reprolab.domain_kge.data import load_splits
    from reprolab.domain_kge.train import build_base_model, initialise_from_transe, train_base_model

    splits = load_splits("nations")
    transe = build_base_model("TransE", splits, dim=8, seed=1, relation_unit_ball=True)
    train_base_model(transe, splits, epochs=2, batch_size=256, lr=0.05)
    model = build_base_model("TransR", splits, dim=8, seed=2)
    initialise_from_transe(model, transe)
    model.reset_parameters_()
    triples = splits.training.mapped_triples[:64]
    assert torch.allclose(model.score_hrt(triples), transe.score_hrt(triples), atol=1e-5)


def test_transe_init_runs_in_a_transr_unit(tmp_path):
    from reprolab.core.runner import run_experiment

    overrides = {"datasets": ["nations"], "base_model": "TransR", "transe_init": True, "epochs": 1,
                 "domain_epochs": 2, "dim": 6}
    results = run_experiment("domain_kge", "quick", overrides, out=tmp_path / "run")
    assert any("started from a TransE" in note for note in results["notes"])
    assert not any((tmp_path / "run" / "checkpoints").glob("transe-*"))  # removed once the unit is recorded


def test_transr_keeps_vectors_in_the_l2_ball_not_pykeens_l1_ball():
    from reprolab.domain_kge.data import load_splits
    from reprolab.domain_kge.train import build_base_model

    model = build_base_model("TransR", load_splits("nations"), dim=6, seed=1)
    model.post_parameter_update()
    vectors = model.entity_representations[0]._embeddings.weight
    assert vectors.norm(dim=1).max() <= 1 + 1e-6 and vectors.norm(p=1, dim=1).max() > 1  # L2 ball, not L1


def test_transr_clamp_option_keeps_pykeens_scoring_norm_clamp_and_saved_models_rebuild_it(tmp_path):
    """``transr_clamp="scoring"`` is PyKEEN's own TransR interaction (the projected vectors clamped into the ball of
    the scoring norm, L1 here); the evaluation's translation tables and a saved model's rebuild follow the option."""
    from pykeen.nn.modules import TransRInteraction

    from reprolab.core.results import load_run
    from reprolab.core.runner import run_experiment
    from reprolab.domain_kge.data import load_splits
    from reprolab.domain_kge.train import _translation_tables, build_base_model
    from reprolab.domain_kge.transr import L2ProjectionTransRInteraction

    splits = load_splits("nations")
    paper = build_base_model("TransR", splits, dim=6, seed=1)
    pykeen = build_base_model("TransR", splits, dim=6, seed=1, transr_clamp="scoring")
    assert isinstance(paper.interaction, L2ProjectionTransRInteraction)
    assert type(pykeen.interaction) is TransRInteraction and pykeen.interaction.p == 1
    heads, _, _ = _translation_tables(pykeen, 0)
    assert heads.norm(p=1, dim=1).max() <= 1 + 1e-5
    overrides = {"datasets": ["nations"], "base_model": "TransR", "transr_clamp": "scoring", "epochs": 1,
                 "domain_epochs": 2, "dim": 6}  # fmt: skip
    run_experiment("domain_kge", "quick", overrides, out=tmp_path / "run")
    assert type(load_run(tmp_path / "run").model("base").interaction) is TransRInteraction


def test_paper_set_claims_need_the_papers_schedule(tmp_path):
    """WN18 on a shortened schedule: its DRE-vs-base claims are `not evaluated` (partial protocol), with the
    protocol flag in the metrics; the paper preset's schedule is the complete one."""
    from reprolab.core.runner import run_experiment
    from reprolab.domain_kge.experiment import PRESETS, DomainKGEConfig, paper_protocol_complete

    assert paper_protocol_complete(DomainKGEConfig(**PRESETS["paper"]))
    assert paper_protocol_complete(DomainKGEConfig(**PRESETS["official"]))
    assert not paper_protocol_complete(DomainKGEConfig(**PRESETS["wn18_transe"]))
    folder = tmp_path / "WN18"
    folder.mkdir()
    import numpy as np

    rng = np.random.default_rng(0)
    lines = [f"{h:04d}\t_r{r}\t{t:04d}" for h, r, t in zip(rng.integers(0, 40, 300), rng.integers(0, 3, 300),
                                                           rng.integers(0, 40, 300), strict=True)]
    (folder / "train.txt").write_text("\n".join(lines[:260]) + "\n")
    (folder / "valid.txt").write_text("\n".join(lines[260:280]) + "\n")
    (folder / "test.txt").write_text("\n".join(lines[280:]) + "\n")
    overrides = {"datasets": ["WN18"], "epochs": 1, "domain_epochs": 2, "dim": 8}
    results = run_experiment("domain_kge", "quick", overrides, out=tmp_path / "run", data=tmp_path)
    assert results["metrics"]["wn18_transe_protocol_complete"] == 0.0
    reasons = {c["id"]: c["reason"] for c in results["claims_not_evaluated"]}
    assert "partial protocol" in reasons["wn18_transe_hits10_improves"]
    assert "partial protocol" in reasons["wn18_transe_mr_improves"]
