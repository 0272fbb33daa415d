"""The DRE experiment body: per dataset train the base model, fit domains, evaluate three variants."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reprolab.core.checkpoint import config_fingerprint
from reprolab.core.data import DatasetInfo, available_datasets, require_dataset
from reprolab.core.errors import DatasetMissingError
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep
from reprolab.domain_kge.checkpoints import StageCheckpoint
from reprolab.domain_kge.data import EMBEDDED, KGSplits, load_splits
from reprolab.domain_kge.experiment import PAPER_BASE, DomainKGEConfig, metric_tag, paper_protocol_complete
from reprolab.domain_kge.model import EllipsoidDomains, entity_space
from reprolab.domain_kge.train import (
    CATEGORIES,
    VARIANTS,
    build_base_model,
    domain_distances,
    evaluate_protocols,
    fit_domains,
    initialise_from_transe,
    rank_metrics,
    relation_categories,
    saved_base_model,
    train_base_model,
    type_constraints,
)

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["resolve_dataset", "run_domain_kge"]

_COLUMNS = ("mr", "mrr", "hits1", "hits3", "hits10")
_STAGES = ("transe", "base", "domains")  # the in-unit checkpoints of one unit, checkpoints/<stage>-<tag>.pt


def _stage_checkpoint(ctx: RunContext, config: DomainKGEConfig, tag: str, stage: str) -> StageCheckpoint:
    """The checkpoint of one stage of unit ``tag``: bound to the run's fingerprint, the unit and the stage."""
    digest = config_fingerprint({"run": ctx.fingerprint, "unit": tag, "stage": stage})
    checkpoint = StageCheckpoint(ctx.checkpoints_dir / f"{stage}-{tag}.pt", digest, config.checkpoint_minutes)
    checkpoint.remove_partial_writes()
    return checkpoint


def resolve_dataset(name: str, data_home: Path) -> str | Path:
    """An embedded name as is; otherwise an absolute folder, or a folder under the data home."""
    if name.lower() in EMBEDDED:
        return name.lower()
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    info = DatasetInfo(
        name=name,
        description=f"triple folder {name}",
        source="a folder with train.txt, valid.txt, test.txt",
        subdir=name,
        required_files=("train.txt", "valid.txt", "test.txt"),
        layout=f"{name}/{{train,valid,test}}.txt, head<TAB>relation<TAB>tail per line",
    )
    return require_dataset(info, data_home)


def present_datasets(config: DomainKGEConfig, ctx: RunContext) -> list[str]:
    """The datasets of ``config`` that are on disk, checked before any training: an absent one (FB15k in `paper`)
    is skipped with a one-line note naming its folder and layout, so its claims are `not evaluated` (issue 20);
    only when none is present does the run stop, with the first absent one's message."""
    def check(name: str) -> None:
        folder = resolve_dataset(name, ctx.data_home)
        if isinstance(folder, Path) and not folder.is_dir():
            raise DatasetMissingError(f"{folder}: not a folder with train.txt, valid.txt, test.txt")

    checks = {name: functools.partial(check, name) for name in config.datasets}
    return list(available_datasets(checks, note=ctx.note))


def run_domain_kge(config: DomainKGEConfig, ctx: RunContext) -> dict[str, float]:
    datasets = present_datasets(config, ctx)  # before the first unit: an absent set never costs hours of others
    sweep = Sweep(ctx)
    metrics: dict[str, float] = {}
    timings: list[tuple[int, float, float]] = []
    for name in datasets:
        dataset_tag = metric_tag(Path(name).name)
        for index, base_model in enumerate([config.base_model, *config.extra_base_models]):
            # the claimed base model keeps the plain names; extra models carry their name in every key
            tag = dataset_tag if index == 0 else f"{dataset_tag}_{metric_tag(base_model)}"
            unit = f"dataset/{tag}"
            if not sweep.is_done(unit):
                result = _run_dataset(config, ctx, name, tag, base_model, sweep)
                ctx.log(unit=unit, **result["metrics"])
                sweep.complete(unit, result)
            for stage in _STAGES:  # the unit is recorded: its in-unit checkpoints are no longer needed
                _stage_checkpoint(ctx, config, tag, stage).path.unlink(missing_ok=True)
            result = sweep.result(unit)
            metrics.update(result["metrics"])
            model_tag = f"{dataset_tag}_{metric_tag(base_model)}"
            if index == 0:  # the claimed model's metrics also under its model tag, like the extra models
                metrics.update({f"{model_tag}{k[len(tag):]}": v for k, v in result["metrics"].items()})
            if dataset_tag in PAPER_BASE:  # the paper's sets: their claims need the paper's schedule
                metrics[f"{model_tag}_protocol_complete"] = float(paper_protocol_complete(config))
            if index == 0:
                timings.append((result["num_train"], result["base_time_s"], result["domain_time_s"]))
            _report_tables(ctx, f"{dataset_tag}, {base_model}", result)
    _, base_time, domain_time = max(timings)
    metrics["domain_fit_time_ratio"] = domain_time / max(base_time, 1e-9)
    ctx.note(
        "Variants: base = the PyKEEN model alone; head = + head domains; both = + head and tail domains. "
        "Domain distances are added to the base energy with weight domain_weight (paper: 1)."
    )
    return metrics


def _report_tables(ctx: RunContext, title: str, result: dict[str, Any]) -> None:
    ctx.add_table(f"{title}: filtered link prediction", result["columns"], result["rows"])
    ctx.add_table(f"{title}: filtered Hits@10 by relation category", result["cat_columns"], result["cat_rows"])
    if "raw_rows" in result:
        ctx.add_table(f"{title}: raw link prediction (no filtering)", result["columns"], result["raw_rows"])
    if "tc_rows" in result:
        ctx.add_table(f"{title}: filtered, type-constrained link prediction", result["columns"], result["tc_rows"])


def _keep_run_folder(ctx: RunContext, sweep: Sweep) -> None:
    """Write the run checkpoint before the first in-unit one: the runner discards the folder of a run that stops
    before anything resumable exists, and a paper-scale unit runs for hours before its Sweep checkpoint."""
    if not ctx.checkpoint_path.exists():
        ctx.save_checkpoint({"done": dict(sweep.done), "partial": None})  # Sweep's own format: no unit done yet


def _is_projection_model(base_model: str) -> bool:
    """TransR or STransE: the models that start from a TransE (``transe_init``) and train at ``transx_lr``."""
    return base_model.lower() in ("transr", "stranse")


def _pretrain_transe(
    config: DomainKGEConfig, ctx: RunContext, splits: KGSplits, tag: str, base_model: str, model: Any
) -> float:
    """With ``transe_init``, train a TransE of the same settings and start TransR / STransE ``model`` from it
    (:func:`initialise_from_transe`); returns its training time (0 when not used)."""
    if not config.transe_init or not _is_projection_model(base_model):
        return 0.0
    # Relation vectors rescaled into the unit ball, as TransR and STransE keep them: PyKEEN applies a model's
    # constraints when training starts, so longer TransE relations would be clamped and the start would not be
    # the trained TransE (the KB2E-family TransE whose vectors those models read rescales them too).
    transe = build_base_model(
        "TransE", splits, dim=config.dim, seed=ctx.seed_for(tag, "transe"), relation_unit_ball=True,
    ).to(ctx.device)
    checkpoint = _stage_checkpoint(ctx, config, tag, "transe")
    train_base_model(
        transe, splits, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, num_negs=config.num_negs,
        filtered_negatives=config.filtered_negatives, checkpoint=checkpoint,
    )
    initialise_from_transe(model, transe)
    ctx.note(f"{tag}: {base_model} started from a TransE trained for {config.epochs} epochs (transe_init).")
    return checkpoint.elapsed_s


def _run_dataset(
    config: DomainKGEConfig, ctx: RunContext, name: str, tag: str, base_model: str, sweep: Sweep
) -> dict[str, Any]:
    dataset = resolve_dataset(name, ctx.data_home)
    splits = load_splits(dataset)
    torch.manual_seed(ctx.seed_for(tag, "init"))
    model = build_base_model(
        base_model, splits, dim=config.dim, seed=ctx.seed_for(tag, "model"),
        relation_unit_ball=config.relation_unit_ball, transr_clamp=config.transr_clamp,
    )
    model = model.to(ctx.device)
    _keep_run_folder(ctx, sweep)
    # every stage resumes from checkpoints/<stage>-<tag>.pt on --resume; their times add up over sessions
    transe_time = _pretrain_transe(config, ctx, splits, tag, base_model, model)
    base_checkpoint = _stage_checkpoint(ctx, config, tag, "base")
    lr = (config.transx_lr or config.lr) if _is_projection_model(base_model) else config.lr
    losses = train_base_model(
        model, splits, epochs=config.epochs, batch_size=config.batch_size, lr=lr, num_negs=config.num_negs,
        filtered_negatives=config.filtered_negatives, checkpoint=base_checkpoint,
    )
    base_time = base_checkpoint.elapsed_s + transe_time  # the TransE start is part of training the base model
    frozen = entity_space(model)[0].clone()
    domain_checkpoint = _stage_checkpoint(ctx, config, tag, "domains")
    num_relations = splits.training.num_relations
    domains, domain_losses = fit_domains(
        model, splits.training.mapped_triples, num_relations, epochs=config.domain_epochs, lr=config.domain_lr,
        k_form=config.k_form, progress=lambda steps, total: ctx.progress(steps, desc=f"{tag} domains", total=total),
        checkpoint=domain_checkpoint,
    )
    domain_time = domain_checkpoint.elapsed_s
    if not torch.equal(frozen, entity_space(model)[0]):
        raise RuntimeError("fitting the domains changed the base embeddings")
    _save_models(ctx, config, tag, base_model, dataset, model, domains)
    distances = domain_distances(model, domains, num_relations)
    protocols = ("filtered", "raw", "tc") if config.type_constrained else ("filtered", "raw")
    allowed = None
    if config.type_constrained:
        allowed = type_constraints(_all_triples(splits), num_relations, splits.training.num_entities)
        allowed = allowed.to(distances.device)
    start = time.perf_counter()
    ranks_by_protocol = evaluate_protocols(
        model, splits, distances, weight=config.domain_weight, batch_size=config.eval_batch_size, allowed=allowed,
        protocols=protocols, progress=lambda chunks, total: ctx.progress(chunks, desc=f"{tag} evaluation", total=total),
    )
    eval_time = time.perf_counter() - start
    ranks = ranks_by_protocol["filtered"]
    ctx.log(
        unit=f"dataset/{tag}",
        base_loss_last=losses[-1] if losses else None,
        domain_loss_first=domain_losses[0] if domain_losses else None,
        domain_loss_last=domain_losses[-1] if domain_losses else None,
        eval_s=eval_time,
    )
    result = _summarise(splits, ranks, tag)
    for protocol, key in (("raw", "raw_rows"), ("tc", "tc_rows")):
        if protocol in ranks_by_protocol:
            summary = _summarise(splits, ranks_by_protocol[protocol], f"{tag}_{protocol}")
            result["metrics"].update(summary["metrics"])
            result[key] = summary["rows"]
    result["metrics"][f"{tag}_eval_s"] = eval_time
    result.update(base_time_s=base_time, domain_time_s=domain_time, num_train=int(splits.training.num_triples))
    result["metrics"][f"{tag}_base_train_s"] = base_time
    result["metrics"][f"{tag}_domain_fit_s"] = domain_time
    _plot_relations(ctx, splits, ranks, tag)
    _plot_domain(ctx, model, domains, splits, tag)
    return result


def _save_models(
    ctx: RunContext, config: DomainKGEConfig, tag: str, base_model: str, dataset: str | Path, model: Any,
    domains: EllipsoidDomains,
) -> None:
    """``models/base`` (the trained KGE model) and ``models/domains`` (its head/tail ellipsoids) of the first
    dataset's claimed base model; ``<tag>-base`` and ``<tag>-domains`` for every other dataset or base model."""
    first = tag == metric_tag(Path(config.datasets[0]).name)
    prefix = "" if first else f"{tag}-"
    source = str(Path(dataset).resolve()) if isinstance(dataset, Path) else dataset
    base_kwargs = {"name": base_model, "dataset": source, "dim": config.dim,
                   "relation_unit_ball": config.relation_unit_ball, "transr_clamp": config.transr_clamp}
    meta = {"tag": tag, "domain_weight": config.domain_weight}
    ctx.save_model(f"{prefix}base", model, build=saved_base_model, kwargs=base_kwargs, meta=meta)
    domain_kwargs = {"num_relations": domains.center.shape[0], "dim": domains.center.shape[-1],
                     "k_form": domains.k_form}
    ctx.save_model(f"{prefix}domains", domains, build=EllipsoidDomains, kwargs=domain_kwargs, meta=meta)


def _all_triples(splits: KGSplits) -> np.ndarray:
    parts = (splits.training, splits.validation, splits.testing)
    return np.concatenate([part.mapped_triples.numpy() for part in parts])


def _summarise(splits: KGSplits, ranks: dict[str, dict[str, np.ndarray]], tag: str) -> dict[str, Any]:
    test = splits.testing.mapped_triples.numpy()
    category_of = relation_categories(_all_triples(splits), splits.training.num_relations)
    test_categories = np.asarray([category_of[r] for r in test[:, 1]])
    metrics: dict[str, float] = {}
    rows = []
    cat_rows = []
    for variant in VARIANTS:
        head, tail = ranks[variant]["head"], ranks[variant]["tail"]
        overall = rank_metrics(np.concatenate([head, tail]))
        for key, value in overall.items():
            metrics[f"{tag}_{variant}_{key}"] = value
        for side, side_ranks in (("head", head), ("tail", tail)):
            side_metrics = rank_metrics(side_ranks)
            metrics[f"{tag}_{variant}_{side}_hits10"] = side_metrics["hits10"]
            metrics[f"{tag}_{variant}_{side}_mr"] = side_metrics["mr"]
            rows.append([variant, side, *(round(side_metrics[k], 4) for k in _COLUMNS)])
        rows.append([variant, "both", *(round(overall[k], 4) for k in _COLUMNS)])
        cat_row: list[Any] = [variant]
        for category in CATEGORIES:
            mask = test_categories == category
            for side_ranks in (head, tail):
                value = rank_metrics(side_ranks[mask])["hits10"] if mask.any() else float("nan")
                cat_row.append(round(value, 4))
            if mask.any():
                key = category.replace("-", "").lower()
                metrics[f"{tag}_{variant}_cat{key}_head_hits10"] = rank_metrics(head[mask])["hits10"]
                metrics[f"{tag}_{variant}_cat{key}_tail_hits10"] = rank_metrics(tail[mask])["hits10"]
        cat_rows.append(cat_row)
    counts = {c: int((test_categories == c).sum()) for c in CATEGORIES}
    cat_columns = ["variant"] + [f"{c} {side} (n={counts[c]})" for c in CATEGORIES for side in ("head", "tail")]
    return {
        "metrics": metrics,
        "columns": ["variant", "predict", "MR", "MRR", "Hits@1", "Hits@3", "Hits@10"],
        "rows": rows,
        "cat_columns": cat_columns,
        "cat_rows": cat_rows,
    }


def _plot_relations(ctx: RunContext, splits: KGSplits, ranks: dict[str, dict[str, np.ndarray]], tag: str) -> None:
    """Per-relation change of filtered Hits@10 (both directions) from base to base + both domains."""
    test = splits.testing.mapped_triples.numpy()
    relations = np.unique(test[:, 1])
    gains = []
    for r in relations:
        mask = test[:, 1] == r
        base = np.concatenate([ranks["base"]["head"][mask], ranks["base"]["tail"][mask]])
        both = np.concatenate([ranks["both"]["head"][mask], ranks["both"]["tail"][mask]])
        gains.append(float((both <= 10).mean() - (base <= 10).mean()))
    fig, ax = new_figure(size=(max(5.0, 0.12 * len(relations)), 3.4))
    ax.bar(range(len(relations)), gains, color=["tab:green" if g >= 0 else "tab:red" for g in gains])
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("relation id")
    ax.set_ylabel("Δ filtered Hits@10")
    ax.set_title(f"{tag}: per-relation gain of domains over the base model")
    save_figure(fig, ctx.figure_path(f"{tag}_per_relation_gain"))


@torch.no_grad()
def _plot_domain(ctx: RunContext, model: Any, domains: EllipsoidDomains, splits: KGSplits, tag: str) -> None:
    """2-D PCA view of the most frequent relation's head/tail domains (plane sections through the centres)."""
    triples = splits.training.mapped_triples
    relation = int(torch.bincount(triples[:, 1]).argmax())
    rows = triples[triples[:, 1] == relation]
    heads_space, tails_space = entity_space(model, relation)
    heads, tails = heads_space[rows[:, 0].unique()], tails_space[rows[:, 2].unique()]
    mean = torch.cat([heads, tails]).mean(0)
    _, _, v = torch.pca_lowrank(torch.cat([heads, tails]) - mean, q=min(2, heads.shape[1]), center=False)
    basis = v[:, :2]
    fig, ax = new_figure(size=(4.6, 4.2))
    for side, points, color, label in ((0, heads, "tab:blue", "head"), (1, tails, "tab:orange", "tail")):
        coords = (points - mean) @ basis
        ax.scatter(coords[:, 0], coords[:, 1], s=8, color=color, alpha=0.6, label=f"{label} entities")
        centre = domains.center[relation, side]
        shape = basis.T @ (2.0 * domains.shape_matrix()[relation, side]) @ basis  # k restricted to the plane
        angles = torch.linspace(0, 2 * torch.pi, 200)
        circle = torch.stack([angles.cos(), angles.sin()], 1)
        radius = (circle @ shape * circle).sum(1).clamp_min(1e-12).rsqrt()
        outline = ((centre - mean) @ basis) + circle * radius.unsqueeze(1)
        ax.plot(outline[:, 0], outline[:, 1], color=color, label=f"{label} domain")
    ax.set_title(f"{tag}: relation {splits.training.relation_id_to_label[relation]}")
    ax.legend(fontsize=7)
    save_figure(fig, ctx.figure_path(f"{tag}_domain_projection"))
