"""The CoMPILE experiment body: load the split, train GraIL and CoMPILE, evaluate both protocols, report."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reprolab.compile_kg.data import FAMILY_INVERSE_PAIRS, InductiveSplit, family_inductive_split, load_grail_split
from reprolab.compile_kg.evaluate import (
    direction_blind_auc_pr,
    distance_scorer,
    full_ranking,
    reversal_auc,
    sample_protocol,
    sampled_metrics,
)
from reprolab.compile_kg.experiment import CompileConfig, _grail_info, dataset_tag
from reprolab.compile_kg.model import build_model
from reprolab.compile_kg.subgraph import SubgraphExtractor
from reprolab.compile_kg.train import ExtractionCache, corrupt, score_triples, train_model
from reprolab.core.data import require_dataset
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.sweep import Sweep

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["load_split", "make_extractor", "make_model", "model_kwargs", "run_compile"]

LABELS = {"grail": "GraIL", "compile": "CoMPILE"}


def load_split(config: CompileConfig, ctx: RunContext | None = None) -> InductiveSplit:
    if config.dataset == "family":
        return family_inductive_split(
            train_families=config.train_families, ind_families=config.ind_families,
            held_out=config.held_out, missing=config.missing_facts, seed=config.data_seed,
        )
    info = _grail_info(config.dataset)
    root = require_dataset(info, ctx.data_home if ctx is not None else None)
    return load_grail_split(root, config.dataset)


def make_extractor(
    config: CompileConfig, model: str, split: InductiveSplit, *, inductive: bool, seed: int = 0
) -> SubgraphExtractor:
    """GraIL cuts undirected enclosing subgraphs; CoMPILE the kind ``compile_subgraph`` names."""
    graph = split.ind_graph if inductive else split.train_graph
    kind = config.compile_subgraph if model == "compile" else "undirected"
    return SubgraphExtractor(
        graph, hops=config.hops, directed=kind != "undirected", mode=config.grail_mode,
        add_query_edge=config.add_query_edge, max_nodes=config.max_nodes, fallback=kind == "directed_fallback",
        max_nodes_per_hop=config.max_nodes_per_hop, seed=seed,
    )


def model_kwargs(config: CompileConfig, model: str, num_relations: int) -> dict[str, Any]:
    """The arguments of :func:`build_model` for ``model`` ("grail" or "compile") under ``config`` (JSON-able: the
    saved models' cards hold them)."""
    common = {"name": model, "num_relations": num_relations, "num_labels": config.hops + 2, "emb_dim": config.emb_dim}
    if model == "grail":
        return common | {
            "rel_emb_dim": config.rel_emb_dim, "attn_rel_emb_dim": config.attn_rel_emb_dim,
            "num_layers": config.num_layers, "num_bases": config.num_bases, "edge_dropout": config.edge_dropout,
        }
    return common | {
        "depth": config.num_layers, "dropout": config.compile_dropout, "readout": config.compile_readout,
        "edge_update": config.compile_edge_update,
    }


def make_model(config: CompileConfig, model: str, num_relations: int) -> torch.nn.Module:
    return build_model(**model_kwargs(config, model, num_relations))


def run_compile(config: CompileConfig, ctx: RunContext) -> dict[str, float]:
    split = load_split(config, ctx)
    ctx.note(f"Dataset {split.name}: " + ", ".join(f"{k} {v}" for k, v in split.summary().items()) + ".")
    sizes = _subgraph_sizes(config, ctx, split)
    sweep = Sweep(ctx)
    protocols = _protocols(config, ctx, split)
    reversal_triples = _reversal_triples(split)
    cache = ExtractionCache()  # the inductive split's evaluation subgraphs, shared by the repeats of a model
    results: dict[str, list[dict[str, Any]]] = {}
    for name in config.models:
        results[name] = []
        for repeat in range(config.repeats):
            model = _trained_model(config, ctx, sweep, split, name, repeat, _steps(config, split, name))
            unit = f"eval/{name}/{repeat}"
            results[name].append(
                sweep.once(unit, _evaluate, config, split, name, model, protocols, reversal_triples, ctx.device, cache)
            )
    metrics = _metrics(config, split, results)
    targeted: list[dict[str, float]] = []
    if config.targeted_steps > 0 and len(reversal_triples):
        targeted = _targeted_asymmetry_test(config, ctx, sweep, split, reversal_triples)
        metrics.update(_targeted_metrics(targeted))
    _record_units(ctx, split, results, targeted)
    metrics.update(sizes)
    metrics["paper_protocol_complete"] = float(_paper_protocol(config, split))
    metrics.update(_distance_control(config, ctx, split, protocols))
    blind = [
        f"{LABELS[n]} {metrics[f'auc_pr_{n}']:.3f} raw vs {metrics[f'auc_pr_direction_blind_{n}']:.3f} blind"
        for n in results if f"auc_pr_direction_blind_{n}" in metrics
    ]
    if blind:
        ctx.note(
            "Direction-blind control (AUC-PR of (s(h,r,t) + s(t,r,h)) / 2, which cannot tell a triple from its "
            "reversal): " + "; ".join(blind) + ". When blind matches raw, the protocol does not reward direction."
        )
    _report(config, ctx, results)
    return metrics


def _subgraph_sizes(config: CompileConfig, ctx: RunContext, split: InductiveSplit) -> dict[str, float]:
    """Nodes and edges per subgraph of 256 training triples and 256 test triples, per extractor kind.

    Reported before training, with a warning when subgraphs are large (a training step costs in proportion
    to the edges of its subgraphs: nell_v2's are ~20x WN18RR_v2's).
    """
    rng = np.random.default_rng(ctx.seed_for("sizes"))
    # the same triples for every model, drawn before the models' loop: a run of one model (halves combined by
    # `reprolab combine`) reports the sizes a joint run does
    samples = [
        (inductive, triples[rng.choice(len(triples), min(256, len(triples)), replace=False)])
        for inductive, triples in ((False, split.train_targets), (True, split.ind_test))
    ]
    metrics: dict[str, float] = {}
    parts = []
    for name in config.models:
        for inductive, sample in samples:
            extractor = make_extractor(config, name, split, inductive=inductive)
            extractor(sample)
            summary = extractor.sizes.summary()
            where = "test" if inductive else "train"
            for key in ("nodes_mean", "edges_mean", "nodes_max", "edgeless_share"):
                metrics[f"subgraph_{key}_{where}_{name}"] = summary[key]
            parts.append(
                f"{LABELS[name]} {where} ({extractor.kind}): {summary['nodes_mean']:.1f} nodes, "
                f"{summary['edges_mean']:.1f} edges (max {summary['nodes_max']:.0f} nodes), "
                f"{100 * summary['edgeless_share']:.1f} % without an edge"
            )
    ctx.note("Subgraph sizes (256 triples each, query edge excluded): " + "; ".join(parts) + ".")
    largest = max((v for k, v in metrics.items() if k.startswith("subgraph_edges_mean_train")), default=0.0)
    if largest > 500:
        print(
            f"compile_kg: {split.name} has large subgraphs ({largest:.0f} edges per training subgraph on "
            f"average; WN18RR_v1 about 20): each training step and evaluation is correspondingly slower. "
            "Progress bars show the ETA (REPROLAB_PROGRESS=1).",
            file=sys.stderr,
        )
    return metrics


def _distance_control(
    config: CompileConfig, ctx: RunContext, split: InductiveSplit, protocols: list[Any]
) -> dict[str, float]:
    """Both protocols applied to a model-free score, ``-d(h, t)`` in the support graph (no training).

    What proximity alone earns: a metric on which this control matches the models cannot tell them apart.
    """
    graph = split.ind_graph
    score = distance_scorer(graph.heads, graph.tails, graph.num_entities)
    sampled = [sampled_metrics(protocol, score, ties=config.rank_ties)[0] for protocol in protocols]
    metrics = {
        "auc_pr_distance": float(np.mean([s["auc_pr"] for s in sampled])),
        "hits10_sampled_distance": float(np.mean([s["hits10"] for s in sampled])),
        "mrr_sampled_distance": float(np.mean([s["mrr"] for s in sampled])),
    }
    if config.full_ranking:
        test = split.ind_test[: config.full_ranking_max_triples] if config.full_ranking_max_triples else split.ind_test
        full = full_ranking(test, graph.num_entities, split.ind_all_true(), score)
        metrics.update({"mrr_full_distance": full.mrr, "hits1_full_distance": full.hits1,
                        "hits10_full_distance": full.hits10})
    ctx.note(
        "Distance-only control (score -d(h, t) in the support graph; no relation, no training): AUC-PR "
        f"{metrics['auc_pr_distance']:.3f}, Hits@10 (sampled) {metrics['hits10_sampled_distance']:.3f}"
        + (f", full-ranking MRR {metrics['mrr_full_distance']:.3f} / Hits@10 {metrics['hits10_full_distance']:.3f}"
           if config.full_ranking else "")
        + ". Where a model does no better, the metric measures proximity only."
    )
    return metrics


def _paper_protocol(config: CompileConfig, split: InductiveSplit) -> bool:
    """Whether the run is the papers' protocol on a GraIL split: each model's full training length (CoMPILE 30
    epochs, GraIL its own 100), best validation, GraIL's sampled ranking on every test triple."""
    return (
        split.name != "family" and config.epochs >= 30
        and ("grail" not in config.models or _epochs(config, "grail") >= 100)
        and config.select_best and config.num_negatives == 49 and config.negatives_replace
        and config.rank_ties == "grail" and config.full_ranking_max_triples == 0
    )


def _epochs(config: CompileConfig, name: str) -> float:
    """Model ``name``'s training epochs: GraIL's own ``grail_epochs`` when set, else the shared ``epochs``."""
    return config.grail_epochs if name == "grail" and config.grail_epochs > 0 else config.epochs


def _lr(config: CompileConfig, name: str) -> float:
    """Model ``name``'s Adam learning rate: GraIL's own ``grail_lr`` when set, else the shared ``lr``."""
    return config.grail_lr if name == "grail" and config.grail_lr > 0 else config.lr


def _steps(config: CompileConfig, split: InductiveSplit, name: str) -> int:
    """Model ``name``'s training steps: its epochs over the training targets, else the shared ``steps``."""
    epochs = _epochs(config, name)
    if epochs > 0:
        return int(epochs * math.ceil(len(split.train_targets) / config.batch_size))
    return config.steps


def _targeted_asymmetry_test(
    config: CompileConfig, ctx: RunContext, sweep: Sweep, split: InductiveSplit, reversal_triples: np.ndarray
) -> list[dict[str, float]]:
    """Train each model ``repeats`` times more with reversed triples among its negatives; ROC-AUC true vs
    reversed, one dict per repeat (a claim unit, paired with the repeat of the main test).

    With random corruptions alone a reversal is almost never a training negative, so no model is asked to
    tell ``(h, r, t)`` from ``(t, r, h)``. Here ``targeted_reversal_rate`` of the negatives are reversals
    (where false), so the test measures whether the architecture *can* represent the direction.
    """
    per_repeat: list[dict[str, float]] = []
    for repeat in range(config.repeats):
        values: dict[str, float] = {}
        for name in config.models:
            unit = f"targeted/{name}/{repeat}"
            if not sweep.is_done(unit):
                model = _trained_model(
                    config, ctx, sweep, split, name, repeat, config.targeted_steps, prefix="train_targeted",
                    reversal_rate=config.targeted_reversal_rate,
                )
                extractor = make_extractor(config, name, split, inductive=True)

                def score(triples: np.ndarray, model: torch.nn.Module = model, extractor=extractor) -> np.ndarray:
                    return score_triples(
                        model, extractor, triples, batch_size=config.eval_batch_size, device=ctx.device
                    )

                sweep.complete(unit, {"reversal_auc": reversal_auc(reversal_triples, score)})
            values[f"reversal_auc_targeted_{name}"] = float(sweep.result(unit)["reversal_auc"])
        per_repeat.append(values)
    return per_repeat


def _targeted_metrics(per_repeat: list[dict[str, float]]) -> dict[str, float]:
    """Mean and spread over repeats of the targeted test's ROC-AUCs."""
    metrics: dict[str, float] = {}
    for key in per_repeat[0] if per_repeat else ():
        values = np.array([r[key] for r in per_repeat])
        metrics[key] = float(values.mean())
        metrics[f"{key}_seed_std"] = float(values.std())
    return metrics


def _trained_model(
    config: CompileConfig, ctx: RunContext, sweep: Sweep, split: InductiveSplit, name: str, repeat: int, steps: int,
    *, prefix: str = "train", reversal_rate: float = 0.0,
) -> torch.nn.Module:
    unit = f"{prefix}/{name}/{repeat}"
    torch.manual_seed(ctx.seed_for(unit, "init"))
    model = make_model(config, name, split.num_relations).to(ctx.device)
    if sweep.is_done(unit):
        model.load_state_dict(sweep.result(unit)["state"])
        _save_model(ctx, config, split, name, repeat, prefix, model)
        return model
    extractor = make_extractor(config, name, split, inductive=False, seed=ctx.seed_for(unit, "hop_cap"))
    validate = _validator(config, ctx, split, extractor, unit) if config.select_best and config.valid_every else None
    best = train_model(
        sweep, unit, model, split.train_graph, split.train_targets, extractor,
        steps=steps, batch_size=config.batch_size, lr=_lr(config, name), weight_decay=config.weight_decay,
        margin=config.margin, generator=ctx.generator(unit, "train", device="cpu"), device=ctx.device,
        checkpoint_every=config.checkpoint_every, reversal_rate=reversal_rate,
        noise_seed=ctx.seed_for(unit, "dropout"), validate=validate, valid_every=config.valid_every,
    )
    if best is not None:  # GraIL/CoMPILE test the best-validation checkpoint
        model.load_state_dict(best["state"])
        ctx.note(f"{unit}: best validation ROC-AUC {best['valid_auc']:.4f} at step {best['step']} of {steps}.")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    sweep.complete(unit, {"state": state, "steps": steps, "best_step": best["step"] if best else steps})
    _save_model(ctx, config, split, name, repeat, prefix, model)
    return model


def _save_model(
    ctx: RunContext, config: CompileConfig, split: InductiveSplit, name: str, repeat: int, prefix: str,
    model: torch.nn.Module,
) -> None:
    """``models/grail`` and ``models/compile`` (repeat 0; ``<model>-repeat<r>`` after it): the models the
    evaluation scores, rebuilt by :func:`reprolab.compile_kg.model.build_model`. The targeted-reversal models
    (``targeted_steps``) are a diagnostic and are not kept."""
    if prefix != "train":
        return
    meta = {"dataset": split.name, "repeat": repeat, "relation_names": list(split.relation_names),
            "subgraph": config.compile_subgraph if name == "compile" else "undirected", "hops": config.hops}
    ctx.save_model(
        name if repeat == 0 else f"{name}-repeat{repeat}", model, build=build_model,
        kwargs=model_kwargs(config, name, split.num_relations), meta=meta,
    )


def _validator(
    config: CompileConfig, ctx: RunContext, split: InductiveSplit, extractor: SubgraphExtractor, unit: str
) -> Callable[[torch.nn.Module], float]:
    """Validation ROC-AUC on the training graph's validation triples, each against one corruption (drawn
    once per unit, filtered against the training graph), as GraIL's ``valid`` evaluator."""
    from sklearn.metrics import roc_auc_score

    positives = split.valid_targets
    negatives = corrupt(
        positives, split.train_graph.num_entities, split.train_graph.known(), ctx.generator(unit, "valid", device="cpu")
    )
    triples = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])

    def validate(model: torch.nn.Module) -> float:
        scores = score_triples(model, extractor, triples, batch_size=config.eval_batch_size, device=ctx.device)
        return float(roc_auc_score(labels, scores))

    return validate


def _protocols(config: CompileConfig, ctx: RunContext, split: InductiveSplit) -> list[Any]:
    """The seeded negative draws of GraIL's protocol, shared by both models."""
    entities = np.arange(split.ind_graph.num_entities)
    known = split.ind_graph.known() if config.negative_filter == "support" else split.ind_all_true()
    return [
        sample_protocol(
            split.ind_test, entities, known, np.random.default_rng(ctx.seed_for("protocol", s)),
            num_negatives=config.num_negatives, replace=config.negatives_replace,
            distinct_ends=config.negatives_replace,
        )
        for s in range(config.samplings)
    ]


def _reversal_triples(split: InductiveSplit) -> np.ndarray:
    """Held-out triples (valid + test) of the inductive graph whose reversal is false.

    On the family KG only those of the inverse-pair relations (father_of/son_of, husband_of/wife_of).
    """
    known = split.ind_all_true()
    held_out = np.concatenate([split.ind_valid, split.ind_test])
    asym = np.array([(t, r, h) not in known and h != t for h, r, t in held_out.tolist()], dtype=bool)
    if split.name == "family":
        wanted = {split.relation_names.index(n) for pair in FAMILY_INVERSE_PAIRS for n in pair}
        asym &= np.isin(held_out[:, 1], list(wanted))
    return held_out[asym]


def _evaluate(
    config: CompileConfig, split: InductiveSplit, name: str, model: torch.nn.Module, protocols: list[Any],
    reversal_triples: np.ndarray, device: torch.device, extraction_cache: ExtractionCache | None = None,
) -> dict[str, Any]:
    extractor = make_extractor(config, name, split, inductive=True)
    cache_key = extractor.kind
    cache: dict[tuple[int, int, int], float] = {}

    def score(triples: np.ndarray) -> np.ndarray:
        """Scores, memoised: the sampled candidates are a subset of the full-ranking ones, scored once."""
        keys = [tuple(row) for row in np.asarray(triples).tolist()]
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        if missing:
            values = score_triples(
                model, extractor, np.array(missing, dtype=np.int64), batch_size=config.eval_batch_size,
                device=device, cache=extraction_cache, cache_key=cache_key, desc=f"scoring {name}",
            )
            cache.update(zip(missing, values.tolist()))
        return np.array([cache[k] for k in keys])

    result: dict[str, Any] = {}
    if config.full_ranking:
        test = split.ind_test
        if config.full_ranking_max_triples:
            test = test[: config.full_ranking_max_triples]
        full = full_ranking(test, split.ind_graph.num_entities, split.ind_all_true(), score)
        result["full"] = {"mrr": full.mrr, "hits1": full.hits1, "hits10": full.hits10}
    per_sampling = []
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    for index, protocol in enumerate(protocols):
        values, pos, neg = sampled_metrics(protocol, score, ties=config.rank_ties)
        values["auc_pr_direction_blind"] = direction_blind_auc_pr(protocol, score)
        per_sampling.append(values)
        if index == 0:
            pos_scores, neg_scores = pos.tolist(), neg.tolist()
    result.update({"per_sampling": per_sampling, "pos_scores": pos_scores, "neg_scores": neg_scores})
    if len(reversal_triples):
        result["reversal_auc"] = reversal_auc(reversal_triples, score)
    return result


def _metrics(
    config: CompileConfig, split: InductiveSplit, results: dict[str, list[dict[str, Any]]]
) -> dict[str, float]:
    """Means over repeats of the per-repeat means over samplings; spreads over samplings and over repeats."""
    metrics: dict[str, float] = {}
    for name, repeats in results.items():
        for key in ("auc_pr", "auc_roc", "mrr", "hits1", "hits10"):
            values = np.array([[s[key] for s in r["per_sampling"]] for r in repeats])  # repeats x samplings
            base = key if key in ("auc_pr", "auc_roc") else f"{key}_sampled"
            metrics[f"{base}_{name}"] = float(values.mean())
            metrics[f"{base}_{name}_std"] = float(values.std(axis=1).mean())  # spread over negative draws
            metrics[f"{base}_{name}_seed_std"] = float(values.mean(axis=1).std())  # spread over repeats
            if key == "hits10":
                metrics[f"{base}_{name}_min"] = float(values.min())
                metrics[f"{base}_{name}_max"] = float(values.max())
        if all("auc_pr_direction_blind" in s for r in repeats for s in r["per_sampling"]):
            blind = np.array([[s["auc_pr_direction_blind"] for s in r["per_sampling"]] for r in repeats])
            metrics[f"auc_pr_direction_blind_{name}"] = float(blind.mean())
        if all("reversal_auc" in r for r in repeats):
            values = np.array([r["reversal_auc"] for r in repeats])
            metrics[f"reversal_auc_{name}"] = float(values.mean())
            metrics[f"reversal_auc_{name}_seed_std"] = float(values.std())
        if all("full" in r for r in repeats):
            for key in ("mrr", "hits1", "hits10"):
                values = np.array([r["full"][key] for r in repeats])
                metrics[f"{key}_full_{name}"] = float(values.mean())
                metrics[f"{key}_full_{name}_seed_std"] = float(values.std())
    tag = dataset_tag(split.name)  # "family" on the embedded KG
    for name in results:
        for key in ("auc_pr", "hits10_sampled"):
            metrics[f"{tag}_{key}_{name}"] = metrics[f"{key}_{name}"]
    return metrics


def _record_units(
    ctx: RunContext, split: InductiveSplit, results: dict[str, list[dict[str, Any]]],
    targeted: list[dict[str, float]] | None = None,
) -> None:
    """One unit per repeat (the papers average 5 runs): the repeat's metrics of both models, so that the
    claims are decided over repeats x seeds. Repeat ``r`` of GraIL is paired with repeat ``r`` of CoMPILE.

    A unit is one independently trained model per method: the ``samplings`` draws of negatives evaluate the
    same models, so they are averaged inside the unit (as units they would be pseudo-replicates, issue 18).
    The targeted test's models of repeat ``r`` (``targeted``) join unit ``r``."""
    tag = dataset_tag(split.name)
    repeats = min(len(r) for r in results.values())
    for index in range(repeats):
        unit: dict[str, float] = {}
        for name, runs in results.items():
            per = runs[index]["per_sampling"]
            for key, base in (("auc_pr", "auc_pr"), ("hits10", "hits10_sampled"), ("mrr", "mrr_sampled")):
                value = float(np.mean([s[key] for s in per]))
                unit[f"{base}_{name}"] = value
                unit[f"{tag}_{base}_{name}"] = value
            if "reversal_auc" in runs[index]:
                unit[f"reversal_auc_{name}"] = float(runs[index]["reversal_auc"])
            if "full" in runs[index]:
                unit[f"mrr_full_{name}"] = float(runs[index]["full"]["mrr"])
        if targeted and index < len(targeted):
            unit.update(targeted[index])
        ctx.record_unit(f"repeat{index}", unit)


def _report(config: CompileConfig, ctx: RunContext, results: dict[str, list[dict[str, Any]]]) -> None:
    rows = []
    for name, repeats in results.items():
        for index, result in enumerate(repeats):
            rows.append(_table_row(f"{LABELS[name]} #{index}", result))
    ctx.add_table(
        f"Inductive test graph ({config.dataset}), one row per trained model; sampled: {config.samplings} draws "
        f"of 1 (AUC-PR) and {config.num_negatives} (ranking) negatives, mean ± std over draws; full: filtered "
        "ranking over all entities; reversal: ROC-AUC of held-out triples vs their reversals",
        ["model", "AUC-PR", "Hits@10 (50 neg.)", "MRR (50 neg.)", "MRR (full)", "Hits@1 (full)",
         "Hits@10 (full)", "reversal ROC-AUC"],
        rows,
    )
    _plot_training(ctx, list(results))
    _plot_scores(ctx, {name: repeats[0] for name, repeats in results.items()})


def _table_row(label: str, result: dict[str, Any]) -> list[str]:
    per = result["per_sampling"]

    def spread(key: str) -> str:
        values = np.array([s[key] for s in per])
        return f"{values.mean():.3f} ± {values.std():.3f}"

    full = result.get("full", {})
    return [
        label, spread("auc_pr"), spread("hits10"), spread("mrr"),
        f"{full['mrr']:.3f}" if full else "-", f"{full['hits1']:.3f}" if full else "-",
        f"{full['hits10']:.3f}" if full else "-",
        f"{result['reversal_auc']:.3f}" if "reversal_auc" in result else "-",
    ]


def _plot_training(ctx: RunContext, models: list[str]) -> None:
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with open(ctx.metrics_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            unit = str(record.get("unit", ""))
            if unit.startswith("train/") and "loss" in record:
                steps, losses = curves.setdefault(unit[6:], ([], []))
                steps.append(int(record["step"]))
                losses.append(float(record["loss"]))
    fig, ax = new_figure(size=(6.0, 4.0))
    colours = {"grail": "tab:blue", "compile": "tab:orange"}
    for key, (steps, losses) in sorted(curves.items()):
        name, _, repeat = key.partition("/")
        if name in models:
            label = LABELS[name] if repeat in ("", "0") else None
            ax.plot(steps, losses, color=colours[name], alpha=0.8, linewidth=1, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("margin ranking loss per positive")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_title("Training curves (one line per repeat)")
    ax.legend()
    save_figure(fig, ctx.figure_path("training_curves"))


def _plot_scores(ctx: RunContext, results: dict[str, dict[str, Any]]) -> None:
    """Histograms of test-positive and sampled-negative scores (first repeat, first draw)."""
    fig, axes = new_figure(ncols=len(results), size=(5.0, 3.8))
    axes = np.atleast_1d(axes).ravel()
    for ax, (name, result) in zip(axes, results.items()):
        pos, neg = np.asarray(result["pos_scores"]), np.asarray(result["neg_scores"])
        bins = np.linspace(min(pos.min(), neg.min()), max(pos.max(), neg.max()), 30)
        ax.hist(pos, bins=bins, alpha=0.6, label="test positives")
        ax.hist(neg, bins=bins, alpha=0.6, label="sampled negatives")
        ax.set_title(f"{LABELS[name]} scores")
        ax.set_xlabel("score")
        ax.legend(fontsize=8)
    save_figure(fig, ctx.figure_path("score_distributions"))
