"""The DEMI experiment body: Gaussian MI sweep, digits representation check, figures and metrics."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep
from reprolab.demi.data import CorrelatedGaussian, DigitsViews
from reprolab.demi.experiment import DEMIConfig, estimator_names, mi_tag
from reprolab.demi.train import (
    DigitsEncoderObjective,
    build_estimator,
    evaluate_estimator,
    fit_linear_probe,
    train_digits_encoder,
    train_estimator,
)

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["run_demi"]


def run_demi(config: DEMIConfig, ctx: RunContext) -> dict[str, float]:
    sweep = Sweep(ctx)
    estimates = _gaussian_sweep(config, ctx, sweep)
    metrics = _sweep_metrics(config, estimates)
    _plot_sweep(config, ctx, estimates)
    if config.digits:
        metrics.update(_digits_check(config, ctx, sweep))
    return metrics


def _gaussian_sweep(config: DEMIConfig, ctx: RunContext, sweep: Sweep) -> dict[str, dict[float, dict]]:
    estimates: dict[str, dict[float, dict]] = {}
    for prefix, name, k in estimator_names(config):
        estimates[prefix] = {}
        for mi in config.true_mis:
            unit = f"gauss/{prefix}/mi{mi_tag(mi)}"
            if not sweep.is_done(unit):
                result = _train_and_evaluate(config, ctx, sweep, unit, name, k, mi)
                ctx.log(unit=unit, true_mi=mi, **result)  # logged before the checkpoint that records it
                sweep.complete(unit, result)
            estimates[prefix][mi] = sweep.result(unit)
    return estimates


def _train_and_evaluate(
    config: DEMIConfig, ctx: RunContext, sweep: Sweep, unit: str, name: str, k: int, mi: float
) -> dict[str, float]:
    torch.manual_seed(ctx.seed_for(unit, "init"))
    build_kwargs = {
        "name": name,
        "dim": config.dim,
        "k": k,
        "critic": config.critic,
        "hidden": config.hidden,
        "embed": config.embed,
        "layers": config.layers,
    }
    estimator = build_estimator(**build_kwargs).to(ctx.device)
    benchmark = CorrelatedGaussian(config.dim, mi)
    # exact conditional negatives: as many as the batch offers InfoNCE, so every term has the same cap
    exact = config.batch_size - 1 if name == "demi_exact" else 0
    train_estimator(
        sweep,
        unit,
        estimator,
        benchmark,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        generator=ctx.generator(unit, "train"),
        device=ctx.device,
        checkpoint_every=config.checkpoint_every,
        exact_negatives=exact,
    )
    result = evaluate_estimator(
        estimator,
        benchmark,
        batch_size=config.batch_size,
        batches=config.eval_batches,
        generator=ctx.generator(unit, "eval"),
        device=ctx.device,
        exact_negatives=exact,
    )
    # kept for reprolab.load_run(dir).model("<estimator>-mi<true MI>"); the true MI goes in the card
    ctx.save_model(
        unit.removeprefix("gauss/").replace("/", "-"), estimator, build=build_estimator, kwargs=build_kwargs,
        meta={"true_mi": mi, "benchmark_dim": config.dim},
    )  # fmt: skip
    return {"estimate": result.mean, "stderr": result.stderr}


def _sweep_metrics(config: DEMIConfig, estimates: dict[str, dict[float, dict]]) -> dict[str, float]:
    log_n = math.log(config.batch_size)
    metrics: dict[str, float] = {"log_n": log_n}
    for prefix, points in estimates.items():
        for mi, value in points.items():
            metrics[f"{prefix}_at_{mi_tag(mi)}"] = value["estimate"]
    infonce = estimates["infonce"]
    metrics["infonce_max_minus_log_n"] = max(v["estimate"] for v in infonce.values()) - log_n
    high = [mi for mi in config.true_mis if mi >= 2 * log_n]
    for k in config.ks:
        demi = estimates[f"demi_k{k}"]
        if high:
            metrics[f"demi_k{k}_min_gain_high_mi"] = min(demi[mi]["estimate"] - infonce[mi]["estimate"] for mi in high)
    top = max(config.true_mis)
    if 2 in config.ks and 4 in config.ks:
        metrics["demi_k4_minus_k2_at_max_mi"] = (
            estimates["demi_k4"][top]["estimate"] - estimates["demi_k2"][top]["estimate"]
        )
    metrics["max_excess_over_true_mi"] = max(
        v["estimate"] - mi - config.error_z * v["stderr"] for points in estimates.values() for mi, v in points.items()
    )
    return metrics


def _plot_sweep(config: DEMIConfig, ctx: RunContext, estimates: dict[str, dict[float, dict]]) -> None:
    log_n = math.log(config.batch_size)
    mis = sorted(config.true_mis)
    fig, ax = new_figure(size=(6.0, 4.5))
    ax.plot(mis, mis, color="black", linestyle="--", linewidth=1, label="true MI")
    ax.axhline(log_n, color="grey", linestyle=":", label=f"log N = {log_n:.2f}")
    rows = []
    for prefix, points in estimates.items():
        means = [points[mi]["estimate"] for mi in mis]
        errors = [config.error_z * points[mi]["stderr"] for mi in mis]
        ax.errorbar(mis, means, yerr=errors, marker="o", markersize=3, capsize=2, label=prefix)
    for mi in mis:
        rows.append(
            [mi, *[f"{estimates[p][mi]['estimate']:.2f} ± {estimates[p][mi]['stderr']:.2f}" for p in estimates]]
        )
    ax.set_xlabel("true MI (nats)")
    ax.set_ylabel("estimate (nats)")
    ax.set_title(f"MI estimates, d={config.dim}, N={config.batch_size}, {config.critic} critic")
    ax.legend(fontsize=8)
    save_figure(fig, ctx.figure_path("mi_sweep"))
    ctx.add_table("Estimates (mean ± standard error) by true MI", ["true MI", *estimates], rows)


def _digits_check(config: DEMIConfig, ctx: RunContext, sweep: Sweep) -> dict[str, float]:
    data = DigitsViews(seed=ctx.seed)
    metrics = {
        "digits_probe_acc_raw_pixels": fit_linear_probe(
            data.train_images.flatten(1), data.train_labels, data.test_images.flatten(1), data.test_labels, ctx.seed
        )
    }
    for objective in ("infonce", "demi"):
        unit = f"digits/{objective}"
        if not sweep.is_done(unit):
            torch.manual_seed(ctx.seed_for(unit, "init"))
            model = DigitsEncoderObjective(objective).to(ctx.device)
            train_digits_encoder(
                sweep,
                unit,
                model,
                data,
                steps=config.digits_steps,
                batch_size=config.digits_batch_size,
                lr=config.digits_lr,
                generator=ctx.generator(unit, "train", device="cpu"),
                device=ctx.device,
                checkpoint_every=config.checkpoint_every,
            )
            train_rep = model.represent(data.train_images.to(ctx.device))
            test_rep = model.represent(data.test_images.to(ctx.device))
            accuracy = fit_linear_probe(train_rep, data.train_labels, test_rep, data.test_labels, ctx.seed)
            ctx.log(unit=unit, probe_accuracy=accuracy)
            sweep.complete(unit, {"probe_accuracy": accuracy})
        metrics[f"digits_probe_acc_{objective}"] = sweep.result(unit)["probe_accuracy"]
    fig, ax = new_figure(size=(4.5, 3.5))
    names = ["raw pixels", "InfoNCE", "DEMI"]
    values = [
        metrics["digits_probe_acc_raw_pixels"],
        metrics["digits_probe_acc_infonce"],
        metrics["digits_probe_acc_demi"],
    ]
    ax.bar(names, values, color=["grey", "tab:blue", "tab:orange"])
    ax.set_ylim(min(values) - 0.05, 1.0)
    ax.set_ylabel("linear-probe test accuracy")
    ax.set_title("sklearn digits, two augmented views")
    save_figure(fig, ctx.figure_path("digits_probe"))
    return metrics
