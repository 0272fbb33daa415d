"""Two more neural baselines of DiffPool's Table 1, on the same dense batches (``x [B, N, F]``, ``adj``, ``mask``).

* ``set2set``: the GraphSAGE stack of DiffPool's own baseline with its global readout replaced by Set2Set
  (Vinyals, Bengio, Kudlur; ICLR 2016), an LSTM attention readout run for ``processing_steps`` rounds
  (PyG :class:`~torch_geometric.nn.aggr.Set2Set`), then the same MLP classifier.
* ``sortpool``: DGCNN (Zhang, Cui, Neumann, Chen; AAAI 2018). Graph convolutions
  ``Z^{t+1} = tanh(D~^-1 A~ Z^t W^t)`` with ``A~ = A + I`` (Eq. 2 there) and channels 32, 32, 32, 1,
  concatenated; SortPooling keeps the ``k`` nodes with the largest last channel, in that order (Sec. 4.2; PyG
  :class:`~torch_geometric.nn.aggr.SortAggregation`); then Conv1d(16, kernel = stride = total channels),
  MaxPool1d(2), Conv1d(32, kernel 5), a dense layer of 128 units with dropout 0.5 and the classifier
  (Sec. 5.2). ``k`` is set so that 60% of the graphs have at most ``k`` nodes, and at least 10
  (:func:`sortpool_k`), as in DGCNN's experiments.

Both drop padded nodes before their readout, so predictions do not depend on padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.nn.aggr import Set2Set, SortAggregation

from reprolab.diffpool.model import PoolOutput, SAGEStack, mlp_head

__all__ = ["SortPoolNet", "Set2SetNet", "sortpool_k"]


def _flatten(z: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real nodes of ``z [B, N, F]`` as one ``[n, F]`` matrix and the graph index of each row."""
    if mask is None:
        mask = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
    keep = mask.bool()
    index = torch.arange(z.shape[0], device=z.device).unsqueeze(1).expand_as(keep)[keep]
    return z[keep], index


def _no_aux(x: torch.Tensor, logits: torch.Tensor) -> PoolOutput:
    zero = x.new_zeros(())
    return PoolOutput(logits, zero, zero, [])


class Set2SetNet(nn.Module):
    """GraphSAGE embeddings, Set2Set readout (``2F`` features), MLP classifier."""

    def __init__(
        self, in_features: int, num_classes: int, *, hidden: int = 30, embed: int = 30, layers: int = 3,
        mlp_hidden: int = 50, dropout: float = 0.0, batch_norm: bool = True, processing_steps: int = 3,
        conv: str = "sage_mean",
    ) -> None:
        super().__init__()
        self.gnn = SAGEStack(in_features, hidden, embed, layers=layers, normalize=True, batch_norm=batch_norm,
                             conv=conv)
        self.readout = Set2Set(self.gnn.out_channels, processing_steps=processing_steps)
        self.head = mlp_head(2 * self.gnn.out_channels, mlp_hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> PoolOutput:
        nodes, index = _flatten(self.gnn(x, adj, mask), mask)
        pooled = self.readout(nodes, index, dim_size=x.shape[0])
        return _no_aux(x, self.head(pooled))


def sortpool_k(node_counts: Sequence[int], fraction: float = 0.6, minimum: int = 10) -> int:
    """The smallest ``k`` such that ``fraction`` of the graphs have at most ``k`` nodes (at least ``minimum``)."""
    ordered = sorted(int(n) for n in node_counts)
    if not ordered:
        return minimum
    return max(minimum, ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


class SortPoolNet(nn.Module):
    """DGCNN: tanh graph convolutions, SortPooling to ``k`` nodes, 1-D convolutions and a dense classifier."""

    def __init__(
        self, in_features: int, num_classes: int, *, k: int, channels: Sequence[int] = (32, 32, 32, 1),
        conv_channels: tuple[int, int] = (16, 32), dense: int = 128, dropout: float = 0.5,
    ) -> None:
        super().__init__()
        sizes = [in_features, *channels]
        self.weights = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        total = sum(channels)
        self.sort = SortAggregation(k)
        self.conv1 = nn.Conv1d(1, conv_channels[0], kernel_size=total, stride=total)
        self.pool = nn.MaxPool1d(2, 2)
        self.conv2 = nn.Conv1d(conv_channels[0], conv_channels[1], kernel_size=5, stride=1)
        length = (k // 2) - 5 + 1
        if length < 1:
            raise ValueError(f"sortpool k must be at least 10, got {k}")
        self.head = nn.Sequential(
            nn.Linear(conv_channels[1] * length, dense), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dense, num_classes)
        )

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> PoolOutput:
        weight = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
        eye = torch.diag_embed(weight)  # self-loops on real nodes only
        a_tilde = adj * weight.unsqueeze(1) * weight.unsqueeze(2) + eye
        propagate = a_tilde / a_tilde.sum(-1, keepdim=True).clamp(min=1.0)  # D~^-1 A~ (padding rows stay 0)
        z, outputs = x, []
        for linear in self.weights:
            z = torch.tanh(propagate @ linear(z))
            outputs.append(z)
        nodes, index = _flatten(torch.cat(outputs, dim=-1), mask)
        sorted_nodes = self.sort(nodes, index, dim_size=x.shape[0])  # [B, k * total]
        h = self.pool(torch.relu(self.conv1(sorted_nodes.unsqueeze(1))))
        h = torch.relu(self.conv2(h))
        return _no_aux(x, self.head(h.flatten(1)))
