"""Training and evaluation of one cross-validation fold (paper Sec. 4.1 protocol, official optimiser settings).

The objective is cross-entropy plus, for DiffPool, the Sec. 3.3 auxiliary losses (link prediction and
assignment entropy, summed over pooling levels). Adam with gradient-norm clipping (official ``clip=2.0``).
One training "step" of :meth:`reprolab.core.sweep.Sweep.train` is one epoch over the fold's training
graphs, in an order drawn from the fold's own generator, so a resumed fold repeats the same epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from reprolab.diffpool.baselines import Set2SetNet, SortPoolNet
from reprolab.diffpool.data import DenseGraphs, GraphSet, size_bucketed_batches
from reprolab.diffpool.model import DiffPoolDet, DiffPoolNet, GraphSAGEPool

if TYPE_CHECKING:
    from reprolab.core.runs import RunContext
    from reprolab.core.sweep import Sweep

__all__ = ["FoldHistory", "TrainSettings", "build_model", "evaluate", "standardize", "train_fold"]

MODEL_NAMES = (
    "diffpool", "diffpool_nolp", "diffpool_det", "graphsage_mean", "graphsage_sum", "graphsage_max", "set2set",
    "sortpool",
)


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    clip: float
    weight_decay: float = 0.0
    eval_every: int = 1
    checkpoint_every: int = 0
    bucket_pool: int = 0  # 0 = random batches; k > 0 = size-bucketed (data.size_bucketed_batches)


@dataclass
class FoldHistory:
    """Per evaluated epoch: training loss, validation and test accuracy (fractions)."""

    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)

    def selected(self) -> tuple[int, float]:
        """(epoch, test accuracy) at the best validation accuracy (the last such epoch on ties)."""
        if not self.epochs:
            raise ValueError("no evaluated epochs")
        best = max(range(len(self.epochs)), key=lambda i: (self.val_acc[i], i))
        return self.epochs[best], self.test_acc[best]

    def to_dict(self) -> dict[str, list]:
        return {"epochs": self.epochs, "loss": self.loss, "val_acc": self.val_acc, "test_acc": self.test_acc}


def build_model(name: str, in_features: int, num_classes: int, max_nodes: int, **kwargs: object) -> nn.Module:
    """A model by name: ``diffpool``, ``diffpool_nolp`` (no link-prediction loss), ``diffpool_det`` (clustering
    instead of learned assignments), ``graphsage_{mean,sum,max}``, ``set2set``, ``sortpool`` (DGCNN; needs
    ``sortpool_k``)."""
    common = {key: kwargs[key] for key in ("hidden", "embed", "layers", "mlp_hidden", "dropout", "batch_norm", "conv")
              if key in kwargs}
    if name in ("diffpool", "diffpool_nolp"):
        return DiffPoolNet(
            in_features, num_classes, max_nodes, num_pool=int(kwargs.get("num_pool", 1)),  # type: ignore[arg-type]
            assign_ratio=float(kwargs.get("assign_ratio", 0.1)),  # type: ignore[arg-type]
            link_loss=name == "diffpool" and bool(kwargs.get("link_loss", True)),
            link_loss_per_entry=bool(kwargs.get("link_loss_per_entry", False)),
            entropy_loss=bool(kwargs.get("entropy_loss", True)),
            assign_normalize=bool(kwargs.get("assign_normalize", False)), **common,  # type: ignore[arg-type]
        )
    if name == "diffpool_det":
        return DiffPoolDet(
            in_features, num_classes, max_nodes, num_pool=int(kwargs.get("num_pool", 1)),  # type: ignore[arg-type]
            assign_ratio=float(kwargs.get("assign_ratio", 0.1)), **common,  # type: ignore[arg-type]
        )
    if name == "set2set":
        return Set2SetNet(in_features, num_classes, **common)  # type: ignore[arg-type]
    if name == "sortpool":
        return SortPoolNet(in_features, num_classes, k=int(kwargs.get("sortpool_k", 10)))  # type: ignore[arg-type]
    if name.startswith("graphsage_"):
        return GraphSAGEPool(in_features, num_classes, readout=name.split("_", 1)[1], **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODEL_NAMES)}")


def feature_stats(train: GraphSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The node-feature mean and std :func:`standardize` applies (0 and 1 for constant columns)."""
    nodes = torch.cat(train.x)
    spread = nodes.std(dim=0)
    constant = spread < 1e-6
    mean = torch.where(constant, torch.zeros_like(spread), nodes.mean(dim=0))
    std = torch.where(constant, torch.ones_like(spread), spread)
    return mean, std


def standardize(train: GraphSet, *others: GraphSet) -> list[GraphSet]:
    """Z-score node features with the mean/std of the training graphs' nodes (constant columns left as is)."""
    mean, std = feature_stats(train)
    out = []
    for data in (train, *others):
        scaled = [(x - mean) / std for x in data.x]
        out.append(GraphSet(data.name, data.edges, scaled, data.y, data.class_names, data.clusters))
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: GraphSet, batch_size: int = 64, device: torch.device | str = "cpu") -> float:
    """Classification accuracy of ``model`` (in eval mode) on ``data``, in size-sorted batches (the model is
    padding-invariant, so the order changes nothing but the padding)."""
    if len(data) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for index in torch.argsort(data.sizes(), stable=True).split(batch_size):
        batch = data.batch(index, device)
        out = model(batch.x, batch.adj, batch.mask)
        correct += int((out.logits.argmax(dim=-1) == batch.y).sum())
    model.train(was_training)
    return correct / len(data)


def loss_on_batch(model: nn.Module, batch: DenseGraphs) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, cross-entropy) on one dense batch; the total adds DiffPool's Sec. 3.3 losses."""
    out = model(batch.x, batch.adj, batch.mask)
    cross_entropy = F.cross_entropy(out.logits, batch.y)
    return cross_entropy + out.auxiliary(), cross_entropy


def train_fold(
    sweep: Sweep, ctx: RunContext, unit: str, model: nn.Module, train: GraphSet, val: GraphSet,
    test: GraphSet, settings: TrainSettings, generator: torch.Generator,
) -> FoldHistory:
    """Train ``model`` for ``settings.epochs`` epochs; evaluate val/test every ``eval_every`` epochs."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, foreach=True)
    history = history_from_log(ctx, unit)
    sizes = train.sizes()

    def epoch(step: int) -> dict[str, float]:
        model.train()
        total, batches = 0.0, 0
        for index in size_bucketed_batches(sizes, settings.batch_size, generator, settings.bucket_pool):
            if len(index) < 2:  # batch norm needs two graphs' worth of statistics
                continue
            batch = train.batch(index, ctx.device)
            optimizer.zero_grad()
            loss, _ = loss_on_batch(model, batch)
            loss.backward()
            if settings.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip, foreach=True)
            optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        values = {"loss": total / max(batches, 1)}
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.epochs:
            values.update(val_acc=evaluate(model, val, device=ctx.device),
                          test_acc=evaluate(model, test, device=ctx.device))
            history.epochs.append(step + 1)
            history.loss.append(values["loss"])
            history.val_acc.append(values["val_acc"])
            history.test_acc.append(values["test_acc"])
            ctx.log(unit=unit, epoch=step + 1, **values)
        return values

    sweep.train(unit, steps=settings.epochs, step_fn=epoch, model=model, optimizer=optimizer,
                generator=generator, checkpoint_every=settings.checkpoint_every)
    return history


def history_from_log(ctx: RunContext, unit: str) -> FoldHistory:
    """The evaluated epochs of ``unit`` already in ``metrics.jsonl`` (non-empty only after a resume)."""
    history = FoldHistory()
    if not ctx.metrics_path.exists():
        return history
    with open(ctx.metrics_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("unit") == unit and "epoch" in record and "val_acc" in record:
                history.epochs.append(int(record["epoch"]))
                history.loss.append(float(record["loss"]))
                history.val_acc.append(_number(record["val_acc"]))
                history.test_acc.append(_number(record["test_acc"]))
    return history


def _number(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]
