"""Sweep.minimise: the shared gradient-step loop logs the loss and extras and steps the scheduler."""

from __future__ import annotations

import json

import torch

from reprolab.core.sweep import Sweep


def test_minimise_descends_logs_extras_and_steps_scheduler(run_context):
    ctx = run_context()
    weight = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(weight.weight, 3.0)
    optimizer = torch.optim.SGD(weight.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)

    def loss_fn(step: int):
        loss = (weight.weight**2).sum()  # minimum at 0
        return loss, {"w": weight.weight.item()}

    Sweep(ctx).minimise("fit", steps=10, loss_fn=loss_fn, model=weight, optimizer=optimizer, log_every=5,
                        scheduler=scheduler)
    assert abs(weight.weight.item()) < 3.0 * 0.9**5  # ten descent steps, lr halved after five
    assert optimizer.param_groups[0]["lr"] == 0.05 * 0.5
    rows = [json.loads(line) for line in ctx.metrics_path.read_text().splitlines()]
    assert [row["step"] for row in rows] == [5, 10]
    assert rows[1]["loss"] < rows[0]["loss"] and "w" in rows[0]


def test_minimise_accepts_a_bare_loss(run_context):
    ctx = run_context()
    weight = torch.nn.Parameter(torch.tensor([2.0]))
    model = torch.nn.Module()
    model.weight = weight
    optimizer = torch.optim.SGD([weight], lr=0.25)
    Sweep(ctx).minimise("fit", steps=1, loss_fn=lambda step: (weight**2).sum(), model=model, optimizer=optimizer,
                        log_every=1)
    assert weight.item() == 1.0  # 2 - 0.25 * 2 * 2
    assert json.loads(ctx.metrics_path.read_text())["loss"] == 4.0


def test_fit_once_trains_then_reloads_the_recorded_weights(run_context):
    ctx = run_context()
    sweep = Sweep(ctx)
    model = torch.nn.Linear(2, 1)
    calls = []

    def fit() -> None:
        calls.append(1)
        torch.nn.init.constant_(model.weight, 7.0)

    sweep.fit_once("unit", model, fit)
    fresh = torch.nn.Linear(2, 1)
    assert sweep.fit_once("unit", fresh, fit) is fresh  # done: the weights come back, fit is not called again
    assert calls == [1] and torch.equal(fresh.weight, torch.full((1, 2), 7.0))


def test_once_computes_logs_and_records_then_skips(run_context):
    ctx = run_context()
    calls = []

    def compute(x: float, *, scale: float) -> dict[str, float]:
        calls.append(x)
        return {"value": x * scale}

    sweep = Sweep(ctx)
    assert sweep.once("u", compute, 2.0, scale=3.0, log=True) == {"value": 6.0}
    assert sweep.once("u", compute, 5.0, scale=1.0, log=True) == {"value": 6.0}  # done: recorded result, no call
    assert calls == [2.0]
    assert [json.loads(line) for line in ctx.metrics_path.read_text().splitlines()] == [{"unit": "u", "value": 6.0}]
