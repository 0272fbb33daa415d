"""--perturb: the verdict-stability check's stand-in for another CPU's float arithmetic."""

from __future__ import annotations

import json

import torch

from reprolab.core.seeding import perturbed_parameters


def test_each_module_is_perturbed_once_by_the_relative_size_asked():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    before = [p.detach().clone() for p in model.parameters()]
    with perturbed_parameters(1e-6, seed=0):
        model(torch.randn(3, 8))
        after_first = [p.detach().clone() for p in model.parameters()]
        model(torch.randn(3, 8))  # a second forward must not perturb again
    for old, new, again in zip(before, after_first, model.parameters()):
        relative = ((new - old) / old).abs().max().item()
        assert 0 < relative < 1e-5 and torch.equal(new, again)
    model(torch.randn(3, 8))  # outside the context the hook is gone
    assert all(torch.equal(a, b) for a, b in zip(after_first, model.parameters()))


def test_zero_is_a_no_op_and_the_noise_is_seeded():
    def perturbed(seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        layer = torch.nn.Linear(4, 4)
        with perturbed_parameters(1e-3, seed=seed):
            layer(torch.zeros(1, 4))
        return layer.weight.detach().clone()

    assert torch.equal(perturbed(1), perturbed(1)) and not torch.equal(perturbed(1), perturbed(2))
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    weight = layer.weight.detach().clone()
    with perturbed_parameters(0.0, seed=0):
        layer(torch.zeros(1, 4))
    assert torch.equal(weight, layer.weight)


def test_a_perturbed_run_is_recorded_and_never_resumes_an_unperturbed_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from reprolab.cli import app

    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path / "cache"))
    settings = ("steps=15", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "exact_ks=[]", "digits=false")
    tiny = [f"--set={s}" for s in settings]
    tiny += ["--set=hidden=16"]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "demi", *tiny, "--out", str(out), "--perturb", "1e-6"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["perturb"] == 1e-6
    resumed = CliRunner().invoke(app, ["run", "demi", *tiny, "--out", str(out), "--resume"])
    # --resume continues with the run's own settings, perturbation included; another --perturb is refused
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "results.json").read_text())["perturb"] == 1e-6
    other = CliRunner().invoke(app, ["run", "demi", *tiny, "--out", str(out), "--resume", "--perturb", "1e-5"])
    assert other.exit_code == 2 and "--perturb 1e-05 differs from the run's 1e-06" in other.output
    bad = CliRunner().invoke(app, ["run", "demi", *tiny, "--out", str(tmp_path / "x"), "--perturb", "-1"])
    assert bad.exit_code == 2 and "--perturb" in bad.output


def test_plain_tensor_weights_are_perturbed_only_inside_a_perturbed_run():
    """perturb_initial reaches weights kept outside nn.Module (LDS's bilevel GCN), and is the identity otherwise."""
    from reprolab.core.seeding import perturb_initial
    from reprolab.lds.model import init_gcn

    def first_weight(relative: float) -> torch.Tensor:
        with perturbed_parameters(relative, seed=0):
            return init_gcn(5, 4, 3, generator=torch.Generator().manual_seed(0)).as_list()[0].detach()

    plain = first_weight(0.0)
    assert torch.equal(plain, init_gcn(5, 4, 3, generator=torch.Generator().manual_seed(0)).as_list()[0].detach())
    changed = first_weight(1e-3)
    assert not torch.equal(plain, changed)
    assert torch.allclose(plain, changed, rtol=1e-2, atol=0.0)
    weight = torch.ones(3)
    assert torch.equal(perturb_initial(weight), torch.ones(3))  # no perturbed run active
