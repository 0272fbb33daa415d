"""The DiffPool experiment body: data, the 10-fold protocol, every model per fold, metrics and figures.

Protocol (paper Sec. 4.1, "10-fold cross-validation, average accuracy"): one stratified 10-fold split fixed
by the run seed; in each fold a ``val_fraction`` of the training graphs is held out to choose the epoch,
and the test accuracy at that epoch is the fold's result. We also report, clearly labelled, the number
the official ``benchmark_task_val`` prints: the best epoch of the fold-averaged *test* curve, which picks
the epoch on the test folds themselves and is therefore optimistic.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from reprolab.core.data import fetch_hint
from reprolab.core.errors import DataError
from reprolab.core.plots import new_figure, save_figure
from reprolab.core.report import mean_std
from reprolab.core.sweep import Sweep
from reprolab.diffpool.baselines import sortpool_k
from reprolab.diffpool.data import (
    GraphSet,
    find_dataset,
    make_hierarchical_communities,
    read_gin_dataset,
    read_tu_dataset,
    stratified_folds,
)
from reprolab.diffpool.experiment import (
    GIN_LAYOUT,
    PAPER_EPOCHS,
    TU_LAYOUT,
    DiffPoolConfig,
    dataset_tag,
    settings_warning,
)
from reprolab.diffpool.kernels import (
    ITERATIONS,
    KERNELS,
    WL_KERNELS,
    graphlet3_features,
    graphlet4_features,
    initial_labels,
    kernel_matrix,
    linear_kernel,
    select_and_test,
    shortest_path_features,
    wl_features,
)
from reprolab.diffpool.model import DiffPoolNet
from reprolab.diffpool.train import TrainSettings, build_model, feature_stats, standardize, train_fold

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext

__all__ = ["load_graphs", "run_diffpool"]


def load_graphs(config: DiffPoolConfig, ctx: RunContext) -> GraphSet:
    """The embedded synthetic set, or a dataset by name: ``tu_folder`` if set, else ``<data home>/TUDataset/<NAME>/``
    (TU text format) or ``<data home>/TUDataset_gin_format/<NAME>.zip`` (GIN/DGCNN format, read in place)."""
    if config.dataset == "synthetic":
        return make_hierarchical_communities(
            config.num_graphs, communities=(config.communities[0], config.communities[1]),
            community_size=(config.community_size[0], config.community_size[1]), seed=ctx.seed_for("synthetic-data"),
        )
    if config.tu_folder:
        folder = Path(config.tu_folder)
        if folder.suffix == ".zip" or (folder.is_dir() and not any(folder.glob("*_graph_indicator.txt"))):
            return read_gin_dataset(folder, config.dataset, features=config.features)
        return read_tu_dataset(folder, config.dataset, features=config.features)
    found = find_dataset(ctx.data_home, config.dataset)
    if found is None:
        raise DataError(
            f"{ctx.data_home}: dataset {config.dataset!r} not found; expected {TU_LAYOUT} or <data home>/"
            f"TUDataset_gin_format/{GIN_LAYOUT} (or set tu_folder, or --data to another data home)."
            + fetch_hint(config.dataset)
        )
    kind, path = found
    if kind == "gin":
        return read_gin_dataset(path, config.dataset, features=config.features)
    return read_tu_dataset(path, path.name, features=config.features)


def run_diffpool(config: DiffPoolConfig, ctx: RunContext) -> dict[str, float]:
    loaded = load_graphs(config, ctx)  # first: an absent dataset is the run's one error line, no warning before it
    warning = settings_warning(config)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
        ctx.note(f"Warning: {warning}.")
    graphs = _filter_large(loaded, config, ctx)
    folds, fold_source = _folds(graphs, config, ctx)
    run_folds = config.run_folds or config.folds
    ctx.note(
        f"Data: {graphs.name}, {len(graphs)} graphs, {graphs.num_classes} classes, up to {graphs.max_nodes} nodes, "
        f"{graphs.num_features} node features ({config.features}). Protocol: {fold_source} {config.folds}-fold CV, "
        f"{run_folds} fold(s) run, {config.epochs} epochs; epoch chosen on {config.val_fraction:.0%} of each "
        "training fold."
    )
    sweep = Sweep(ctx)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in config.models}
    kernels = _kernel_matrices(config, ctx, graphs)
    units = [(k, name) for k in range(run_folds) for name in config.models]
    splits: dict[str, Any] = {}
    for k, name in ctx.progress(units, desc="folds x models", total=len(units)):
        if splits.get("fold") != k:
            splits = _fold_splits(graphs, folds, k, config.val_fraction, ctx.generator("fold", k, "val", device="cpu"))
        unit = f"fold{k}/{name}"
        if name in KERNELS:
            result = sweep.once(unit, _run_kernel_unit, kernels[name], graphs, splits)
        else:
            result = sweep.once(unit, _run_unit, config, ctx, sweep, unit, name, graphs, splits, k == 0)
        results[name].append(result)
    tag = dataset_tag(config)
    _record_fold_units(ctx, tag, results, run_folds)
    metrics = _metrics(tag, results)
    metrics[f"{tag}_protocol_complete"] = float(run_folds == config.folds and config.epochs >= _paper_epochs(config))
    _report(config, ctx, tag, results, metrics)
    _plot_curves(ctx, tag, results)
    if "diffpool" in results and results["diffpool"][0].get("assignments"):
        _plot_assignments(ctx, graphs, results["diffpool"][0]["assignments"])
    return metrics


def _kernel_labels(config: DiffPoolConfig, ctx: RunContext, graphs: GraphSet) -> list[Any]:
    """WL starting labels: the TU node labels when the dataset has them (the kernels' setting), else the features."""
    if config.dataset != "synthetic":
        if config.features == "labels":  # the networks' inputs are the labels: no second read of the data set
            return initial_labels(graphs.x)
        ctx.note(f"Inputs differ: the kernels start from the node labels, the networks see features="
                 f"{config.features} (the claims against kernels assume the same labels).")
        try:
            labelled = _filter_large(load_graphs(replace(config, features="labels"), ctx), config, ctx, note=False)
            return initial_labels(labelled.x)
        except DataError:
            ctx.note("WL kernels: the dataset has no node labels; they start from the node features.")
    return initial_labels(graphs.x)


def _kernel_matrices(
    config: DiffPoolConfig, ctx: RunContext, graphs: GraphSet
) -> dict[str, dict[int, Any]]:
    """Every requested WL kernel for every candidate number of iterations, over all graphs (fold-independent)."""
    wanted = [name for name in config.models if name in KERNELS]
    if not wanted:
        return {}
    labels = _kernel_labels(config, ctx, graphs) if set(wanted) - {"graphlet"} else []
    sizes = [len(x) for x in graphs.x]
    matrices: dict[str, dict[int, Any]] = {}
    if set(wanted) & set(WL_KERNELS):
        features = wl_features(graphs.edges, labels, max(ITERATIONS))
        for name in set(wanted) & set(WL_KERNELS):
            matrices[name] = {h: kernel_matrix(features, name, h) for h in ITERATIONS}
    if "sp" in wanted:
        matrices["sp"] = {0: linear_kernel(shortest_path_features(graphs.edges, labels, sizes))}
    if "graphlet" in wanted:
        count = graphlet3_features if config.graphlet_size == 3 else graphlet4_features
        matrices["graphlet"] = {0: linear_kernel(count(graphs.edges, sizes))}
    return matrices


def _run_kernel_unit(kernels: dict[int, Any], graphs: GraphSet, splits: dict[str, Any]) -> dict[str, Any]:
    chosen = select_and_test(
        kernels, graphs.y.numpy(), *(splits[part].numpy() for part in ("train_index", "val_index", "test_index"))
    )
    return {"test_acc": chosen.test_acc, "epoch": 0, "iterations": chosen.iterations, "C": chosen.C}


def _filter_large(graphs: GraphSet, config: DiffPoolConfig, ctx: RunContext, *, note: bool = True) -> GraphSet:
    """Drop graphs above ``max_nodes``; ``note=False`` for a second copy of the same set (one report line)."""
    if not config.max_nodes or graphs.max_nodes <= config.max_nodes:
        return graphs
    keep = [g for g, n in enumerate(graphs.num_nodes()) if n <= config.max_nodes]
    if note:
        ctx.note(f"Dropped {len(graphs) - len(keep)} graphs with more than max_nodes={config.max_nodes} nodes.")
    kept = graphs.subset(keep)
    if graphs.folds is not None:  # the format's own folds, renumbered to the graphs that remain
        new_index = torch.full((len(graphs),), -1, dtype=torch.long)
        new_index[torch.tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
        kept.folds = [new_index[fold][new_index[fold] >= 0] for fold in graphs.folds]
    return kept


def _folds(graphs: GraphSet, config: DiffPoolConfig, ctx: RunContext) -> tuple[list[torch.Tensor], str]:
    """The dataset's own 10 folds when its format ships them (GIN/DGCNN ``10fold_idx``), else stratified ones."""
    if graphs.folds is not None and config.folds == len(graphs.folds):
        return graphs.folds, "the dataset's own (10fold_idx)"
    return stratified_folds(graphs.y, config.folds, seed=ctx.seed_for("folds")), "stratified"


def _fold_splits(
    graphs: GraphSet, folds: list[torch.Tensor], k: int, val_fraction: float, generator: torch.Generator
) -> dict[str, Any]:
    test_index = folds[k]
    outside = torch.ones(len(graphs), dtype=torch.bool)
    outside[test_index] = False
    train_index = torch.nonzero(outside).flatten()  # every graph not in the test fold (D&D's folds miss 8 graphs)
    train_index = train_index[torch.randperm(len(train_index), generator=generator)]
    n_val = int(round(val_fraction * len(train_index)))
    val_index, train_index = train_index[:n_val], train_index[n_val:]
    raw_train = graphs.subset(train_index)
    train, val, test = standardize(raw_train, *(graphs.subset(i) for i in (val_index, test_index)))
    return {"fold": k, "train": train, "val": val, "test": test, "test_index": test_index,
            "train_index": train_index, "val_index": val_index, "stats": feature_stats(raw_train)}


def _run_unit(
    config: DiffPoolConfig, ctx: RunContext, sweep: Sweep, unit: str, name: str, graphs: GraphSet,
    splits: dict[str, Any], first_fold: bool,
) -> dict[str, Any]:
    torch.manual_seed(ctx.seed_for(unit, "init"))
    kwargs = {
        "name": name, "in_features": graphs.num_features, "num_classes": graphs.num_classes,
        "max_nodes": config.cluster_nodes or graphs.max_nodes, "hidden": config.hidden,
        "embed": config.embed, "layers": config.layers, "mlp_hidden": config.mlp_hidden, "dropout": config.dropout,
        "batch_norm": config.batch_norm, "num_pool": config.num_pool, "assign_ratio": config.assign_ratio,
        "link_loss": config.link_loss, "link_loss_per_entry": config.link_loss_per_entry,
        "entropy_loss": config.entropy_loss, "sortpool_k": sortpool_k([len(x) for x in graphs.x]),
        "conv": config.conv, "assign_normalize": config.assign_normalize,
    }
    model = build_model(**kwargs).to(ctx.device)
    settings = TrainSettings(config.epochs, config.batch_size, config.lr, config.clip, config.weight_decay,
                             config.eval_every, config.checkpoint_every, config.bucket_pool)
    history = train_fold(sweep, ctx, unit, model, splits["train"], splits["val"], splits["test"], settings,
                         ctx.generator(unit, "train", device="cpu"))
    if len(splits["val"]):
        epoch, accuracy = history.selected()
    else:
        epoch, accuracy = history.epochs[-1], history.test_acc[-1]
    result: dict[str, Any] = {"test_acc": accuracy, "epoch": epoch, "history": history.to_dict()}
    if first_fold:  # models/<model name>: fold 0's model after its last epoch, with what its inputs need
        mean, std = splits["stats"]
        meta = {"fold": 0, "epochs": config.epochs, "last_epoch_test_acc": history.test_acc[-1],
                "test_index": splits["test_index"].tolist(), "feature_mean": mean.tolist(),
                "feature_std": std.tolist(), "dataset": graphs.name, "class_names": list(graphs.class_names)}
        ctx.save_model(name, model, build=build_model, kwargs=kwargs, meta=meta)
    if first_fold and isinstance(model, DiffPoolNet) and config.assignment_graphs > 0:
        result["assignments"] = _assignments(model, splits["test"], splits["test_index"], config.assignment_graphs)
    return result


@torch.no_grad()
def _assignments(model: DiffPoolNet, test: GraphSet, index: torch.Tensor, count: int) -> list[dict[str, Any]]:
    """The first-level hard cluster (argmax of S, Eq. 2) of every node of ``count`` test graphs."""
    model.eval()
    count = min(count, len(test))
    batch = test.batch(range(count), next(model.parameters()).device)
    out = model(batch.x, batch.adj, batch.mask)
    drawn = []
    for i in range(count):
        n = int(batch.mask[i].sum())
        drawn.append({"graph": int(index[i]), "cluster": out.assignments[0][i, :n].argmax(-1).tolist()})
    return drawn


def _record_fold_units(ctx: RunContext, tag: str, results: dict[str, list[dict[str, Any]]], run_folds: int) -> None:
    """Each fold is a unit of the claims (``fold{k}``): every model's test accuracy (%) on that fold."""
    for k in range(run_folds):
        accuracies = {f"{tag}_{name}_acc": 100.0 * folds[k]["test_acc"] for name, folds in results.items()}
        ctx.record_unit(f"fold{k}", accuracies)


def _paper_epochs(config: DiffPoolConfig) -> int:
    """Epochs of the paper's protocol (the official default) on real data; the synthetic set has none."""
    return PAPER_EPOCHS if config.dataset != "synthetic" else config.epochs


def _metrics(tag: str, results: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Accuracies in percent: mean and std over folds, and the official-script (test-selected) number."""
    metrics: dict[str, float] = {}
    for name, folds in results.items():
        mean, std = mean_std([100.0 * fold["test_acc"] for fold in folds])
        metrics[f"{tag}_{name}_acc"] = mean
        metrics[f"{tag}_{name}_acc_std"] = std
        if "history" not in folds[0]:  # kernel baselines: no epochs
            continue
        curves = torch.tensor([fold["history"]["test_acc"] for fold in folds], dtype=torch.float64)
        metrics[f"{tag}_{name}_acc_test_selected"] = 100.0 * float(curves.mean(dim=0).max())
        metrics[f"{tag}_{name}_selected_epoch_mean"] = sum(fold["epoch"] for fold in folds) / len(folds)
    metrics[f"{tag}_folds_run"] = float(len(next(iter(results.values()))))
    return metrics


def _report(
    config: DiffPoolConfig, ctx: RunContext, tag: str, results: dict[str, list[dict[str, Any]]],
    metrics: dict[str, float],
) -> None:
    rows = []
    for name, folds in results.items():
        rows.append([
            name,
            f"{metrics[f'{tag}_{name}_acc']:.2f} ± {metrics[f'{tag}_{name}_acc_std']:.2f}",
            f"{metrics[f'{tag}_{name}_acc_test_selected']:.2f}" if "history" in folds[0] else "—",
            " ".join(f"{100 * fold['test_acc']:.1f}" for fold in folds),
        ])
    ctx.add_table(
        f"{config.dataset}: test accuracy (%) over folds",
        ["model", "mean ± std (val-selected epoch)", "official script (test-selected epoch)", "per fold"],
        rows,
    )
    if tag == "enzymes":
        ctx.note("Paper Table 1 (ENZYMES): GraphSAGE 54.25, DiffPool-NoLP 61.95, DiffPool 62.53.")


def _plot_curves(ctx: RunContext, tag: str, results: dict[str, list[dict[str, Any]]]) -> None:
    trained = {name: folds for name, folds in results.items() if "history" in folds[0]}
    if not trained:  # kernels only: no epochs to plot
        return
    fig, axes = new_figure(2, 1, size=(5.0, 3.6))
    for name, folds in trained.items():
        epochs = folds[0]["history"]["epochs"]
        loss = torch.tensor([fold["history"]["loss"] for fold in folds]).mean(dim=0)
        acc = 100 * torch.tensor([fold["history"]["test_acc"] for fold in folds]).mean(dim=0)
        axes[0, 0].plot(epochs, loss.tolist(), label=name)
        axes[0, 1].plot(epochs, acc.tolist(), label=name)
    axes[0, 0].set_xlabel("epoch")
    axes[0, 0].set_ylabel("training loss (mean over folds)")
    axes[0, 1].set_xlabel("epoch")
    axes[0, 1].set_ylabel("test accuracy % (mean over folds)")
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].set_title(tag)
    save_figure(fig, ctx.figure_path("learning_curves"))


def _plot_assignments(ctx: RunContext, graphs: GraphSet, drawn: list[dict[str, Any]]) -> None:
    """Nodes coloured by their first-level DiffPool cluster (the paper's Fig. 2 style)."""
    fig, axes = new_figure(len(drawn), 1, size=(3.2, 3.2))
    axes_list = [axes] if len(drawn) == 1 else list(axes.flatten())
    for ax, item in zip(axes_list, drawn):
        g = item["graph"]
        positions = _layout(graphs.edges[g], len(item["cluster"]), seed=g)
        for source, target in graphs.edges[g].t().tolist():
            if source < target:
                ax.plot(*zip(positions[source], positions[target]), color="grey", linewidth=0.5, zorder=1)
        xs, ys = zip(*positions)
        ax.scatter(xs, ys, c=item["cluster"], cmap="tab20", s=40, zorder=2, vmin=0, vmax=19)
        ax.set_title(f"graph {g}, class {graphs.class_names[int(graphs.y[g])]}", fontsize=8)
        ax.set_axis_off()
    save_figure(fig, ctx.figure_path("cluster_assignments"))


def _layout(edges: torch.Tensor, n: int, seed: int) -> list[tuple[float, float]]:
    try:
        import networkx as nx
    except ImportError:  # circle layout when networkx is absent
        return [(math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n)]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.t().tolist())
    layout = nx.spring_layout(graph, seed=seed)
    return [(float(layout[i][0]), float(layout[i][1])) for i in range(n)]
