"""DiffPool (Ying et al., NeurIPS 2018) and the flat GraphSAGE baselines, on PyG's dense layers.

Notation of the paper (Sec. 3.1-3.3), for one graph with ``n_l`` nodes at level ``l``:

* Eq. (1)  ``Z^(l) = GNN_l,embed(A^(l), X^(l))``   node embeddings            -> :class:`SAGEStack`
* Eq. (2)  ``S^(l) = softmax(GNN_l,pool(A^(l), X^(l)))``  soft assignment to ``n_{l+1}`` clusters
* Eq. (3)  ``X^(l+1) = S^(l)T Z^(l)``               pooled cluster embeddings
* Eq. (4)  ``A^(l+1) = S^(l)T A^(l) S^(l)``          pooled (weighted) adjacency
* Sec. 3.3 auxiliary losses ``L_LP = ||A^(l) - S^(l) S^(l)T||_F`` and ``L_E = 1/n sum_i H(S_i)``

Eqs. (2)-(4) are :func:`diff_pool`; the Sec. 3.3 losses are :func:`link_prediction_loss` (the paper's
Frobenius norm per graph over its real nodes, averaged over the graphs of a batch) and
:func:`assignment_entropy` (averaged over real rows only). PyG's ``dense_diff_pool`` is not used for them:
its link loss is the *batch* norm divided by ``B N^2`` (padded entries included), about 10^-4 on an ENZYMES
batch with a gradient ~10^4 times smaller than the cross-entropy's, so DiffPool trained as DiffPool-NoLP;
its entropy averages over padded rows too. Also written here: batch norm restricted to real (unpadded)
nodes, the multi-layer embedding/assignment stacks with l2-normalised embeddings (Sec. 4.1, "Model
configurations"), the hierarchy of pooling levels and the per-level max readout concatenated before the
MLP classifier (the official ``SoftPoolingGcnEncoder``).

Dense pooling costs ``O(B N^2)`` memory for the adjacency and ``O(B N^2 C + B N C^2)`` time per level for
``S^T A S`` (``N`` = padded node count, ``C`` = clusters); see docs/notes/diffpool.md#speed-and-memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import DenseSAGEConv

from reprolab.diffpool.experiment import CONVS  # the layer names a config may give (one list, no graph imports there)

__all__ = [
    "CONVS", "DiffPoolDet", "DiffPoolNet", "GraphSAGEPool", "MaskedBatchNorm", "PoolOutput", "SAGEStack",
    "SumGraphConv", "assignment_entropy", "cluster_counts", "diff_pool", "link_prediction_loss",
]



class MaskedBatchNorm(nn.Module):
    """``BatchNorm1d`` over the feature axis of ``x [B, N, F]``, with statistics from real nodes only.

    Padded nodes (``mask == 0``) neither enter the batch statistics nor receive non-zero outputs. The
    real rows are gathered, normalised and scattered back (faster than masked sums over the padding when
    most of ``N`` is padding, as in ENZYMES: 33 real of 126 nodes on average).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        keep = mask.bool()
        out = torch.zeros_like(x)
        out[keep] = self.bn(x[keep])
        return out


class SumGraphConv(nn.Module):
    """The official code's ``GraphConv`` (RexYing/diffpool ``encoders.py``, as its DiffPool builds it):
    ``Y = (A X) W + b`` on the raw adjacency (``GraphSampler(normalize=False)``), neighbours summed, no
    self term (``add_self = not concat`` with ``concat=True``), optional l2 normalisation of each node's
    output, Xavier-uniform weights with the ReLU gain and zero bias. Padded rows are zeroed, so the layer
    is padding-invariant like ``DenseSAGEConv`` (the official code leaves ``relu(b)`` in padded rows and
    masks later; see docs/diffpool.md for what that changes).
    """

    def __init__(self, in_channels: int, out_channels: int, *, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight, gain=nn.init.calculate_gain("relu"))

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = (adj @ x) @ self.weight + self.bias
        if self.normalize:
            out = F.normalize(out, p=2.0, dim=-1)
        if mask is not None:
            out = out * mask.unsqueeze(-1).to(out.dtype)
        return out


def make_conv(conv: str, in_channels: int, out_channels: int, *, normalize: bool) -> nn.Module:
    """One GNN layer by name (:data:`CONVS`)."""
    if conv == "sage_mean":
        return DenseSAGEConv(in_channels, out_channels, normalize=normalize)
    if conv == "official_sum":
        return SumGraphConv(in_channels, out_channels, normalize=normalize)
    raise ValueError(f"conv must be one of {', '.join(CONVS)}, got {conv!r}")


class SAGEStack(nn.Module):
    """A GNN of ``layers`` dense convolutions whose layer outputs are concatenated: GraphSAGE-mean
    (``DenseSAGEConv``, the paper) by default, or the official code's :class:`SumGraphConv`.

    Implements ``GNN(A, X)`` of Eqs. (1)-(2): ``layers`` convolutions, ReLU and (masked) batch norm after
    every layer but the last, and optional l2 normalisation of every layer's output (Sec. 4.1). The
    output is the concatenation of all layer outputs (``hidden * (layers - 1) + out`` features).
    """

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, *, layers: int = 3,
        normalize: bool = True, batch_norm: bool = True, conv: str = "sage_mean",
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        sizes = [in_channels] + [hidden] * (layers - 1) + [out_channels]
        self.convs = nn.ModuleList(
            make_conv(conv, a, b, normalize=normalize) for a, b in zip(sizes, sizes[1:])
        )
        self.norms = nn.ModuleList(
            MaskedBatchNorm(b) if batch_norm else nn.Identity() for b in sizes[1:-1]
        )
        self.out_channels = sum(sizes[1:])

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        outputs = []
        for i, conv in enumerate(self.convs):
            x = conv(x, adj, mask)
            if i < len(self.convs) - 1:
                x = F.relu(x)
                norm = self.norms[i]
                x = norm(x, mask) if isinstance(norm, MaskedBatchNorm) else norm(x)
            outputs.append(x)
        return torch.cat(outputs, dim=-1)


def masked_readout(z: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Graph readout over the node axis of ``z [B, N, F]``: ``max``, ``mean`` or ``sum`` of real nodes."""
    if mask is None:
        mask = torch.ones(z.shape[:2], dtype=z.dtype, device=z.device)
    weight = mask.to(z.dtype).unsqueeze(-1)
    if how == "max":
        return z.masked_fill(weight == 0, float("-inf")).max(dim=1).values
    total = (z * weight).sum(dim=1)
    if how == "sum":
        return total
    if how == "mean":
        return total / weight.sum(dim=1).clamp(min=1)
    raise ValueError(f"readout must be max, mean or sum, got {how!r}")


def mlp_head(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Module:
    """The classifier after the readout (one hidden ReLU layer of ``hidden`` units, or linear if 0)."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def diff_pool(
    z: torch.Tensor, adj: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. (3)-(4): ``X' = S^T Z`` and ``A' = S^T A S`` for assignments ``s [B, N, C]`` (already row-softmaxed,
    padded rows zero)."""
    if mask is not None:
        z = z * mask.unsqueeze(-1).to(z.dtype)
    st = s.transpose(1, 2)
    return st @ z, st @ adj @ s


def link_prediction_loss(
    adj: torch.Tensor, s: torch.Tensor, mask: torch.Tensor | None, *, per_entry: bool = False
) -> torch.Tensor:
    """Sec. 3.3 ``L_LP = ||A - S S^T||_F`` of each graph over its real nodes, averaged over the batch's graphs.

    The norm is the paper's (un-squared, un-normalised), taken per graph and averaged over graphs like the
    cross-entropy it is added to; padded rows of ``s`` and padded entries of ``adj`` are zero, so padding
    adds nothing. ``per_entry=True`` divides each graph's norm by its real node count ``n_g`` (the root mean
    square over its ``n_g^2`` real entries, the per-entry scale of the official masked loss): on ENZYMES
    that gradient is 8-40x below the cross-entropy's, the paper's norm is within 10x of it (tested).
    """
    residual = adj - s @ s.transpose(1, 2)
    # the sqrt's gradient is infinite at 0; 1e-12 only matters for a graph reconstructed exactly
    norms = residual.pow(2).sum(dim=(1, 2)).clamp(min=1e-12).sqrt()
    if per_entry:
        nodes = mask.sum(dim=1).to(s.dtype) if mask is not None else s.new_full((s.shape[0],), s.shape[1])
        norms = norms / nodes.clamp(min=1)
    return norms.mean()


def assignment_entropy(s: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sec. 3.3 ``L_E = 1/n sum_i H(S_i)``, the mean row entropy of ``S`` over real (unpadded) rows only."""
    entropy = -(s * torch.log(s + 1e-15)).sum(dim=-1)
    if mask is None:
        return entropy.mean()
    weight = mask.to(s.dtype)
    return (entropy * weight).sum() / weight.sum().clamp(min=1)


def cluster_counts(max_nodes: int, assign_ratio: float, num_pool: int) -> list[int]:
    """Clusters per pooling level: ``int(n * ratio)`` applied level by level (official code), at least 2."""
    counts, n = [], max_nodes
    for _ in range(num_pool):
        n = max(2, int(n * assign_ratio))
        counts.append(n)
    return counts


@dataclass
class PoolOutput:
    """A forward pass: class ``logits [B, C]``, auxiliary losses summed over levels, assignments per level."""

    logits: torch.Tensor
    link_loss: torch.Tensor
    entropy_loss: torch.Tensor
    assignments: list[torch.Tensor]

    def auxiliary(self) -> torch.Tensor:
        return self.link_loss + self.entropy_loss


class DiffPoolNet(nn.Module):
    """Hierarchical graph classifier with ``num_pool`` DiffPool layers (Sec. 3.2, Fig. 1).

    Level ``l`` runs an embedding :class:`SAGEStack` (Eq. 1) and, before each pooling, a separate
    assignment :class:`SAGEStack` followed by a linear map to ``n_{l+1}`` cluster logits (Eq. 2); the
    pooled graph (Eqs. 3-4) feeds the next level. Each level's embeddings are max-read-out and the
    concatenation goes to an MLP. ``link_loss`` / ``entropy_loss`` switch the Sec. 3.3 regularisers;
    ``link_loss=False`` is the paper's DiffPool-NoLP ablation (Table 1).
    """

    def __init__(
        self, in_features: int, num_classes: int, max_nodes: int, *, hidden: int = 30, embed: int = 30,
        layers: int = 3, num_pool: int = 1, assign_ratio: float = 0.1, mlp_hidden: int = 50,
        dropout: float = 0.0, batch_norm: bool = True, link_loss: bool = True, entropy_loss: bool = True,
        link_loss_per_entry: bool = False, conv: str = "sage_mean", assign_normalize: bool = False,
    ) -> None:
        super().__init__()
        if num_pool < 1:
            raise ValueError(f"num_pool must be >= 1, got {num_pool}")
        self.use_link_loss = link_loss
        self.link_loss_per_entry = link_loss_per_entry
        self.use_entropy_loss = entropy_loss
        self.clusters = cluster_counts(max_nodes, assign_ratio, num_pool)
        self.embed_gnns = nn.ModuleList()
        self.assign_gnns = nn.ModuleList()
        self.assign_linears = nn.ModuleList()
        width = in_features
        for level in range(num_pool + 1):
            gnn = SAGEStack(width, hidden, embed, layers=layers, normalize=True, batch_norm=batch_norm, conv=conv)
            self.embed_gnns.append(gnn)
            if level < num_pool:
                assign = SAGEStack(width, hidden, self.clusters[level], layers=layers, normalize=assign_normalize,
                                   batch_norm=batch_norm, conv=conv)
                self.assign_gnns.append(assign)
                self.assign_linears.append(nn.Linear(assign.out_channels, self.clusters[level]))
            width = gnn.out_channels
        self.head = mlp_head(width * (num_pool + 1), mlp_hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> PoolOutput:
        readouts, assignments = [], []
        link = x.new_zeros(())
        entropy = x.new_zeros(())
        for level, embed_gnn in enumerate(self.embed_gnns):
            z = embed_gnn(x, adj, mask)
            readouts.append(masked_readout(z, mask, "max"))
            if level == len(self.assign_gnns):
                break
            s = torch.softmax(self.assign_linears[level](self.assign_gnns[level](x, adj, mask)), dim=-1)  # Eq. (2)
            if mask is not None:
                s = s * mask.unsqueeze(-1).to(s.dtype)
            assignments.append(s)
            if self.use_link_loss:
                link = link + link_prediction_loss(adj, s, mask, per_entry=self.link_loss_per_entry)
            if self.use_entropy_loss:
                entropy = entropy + assignment_entropy(s, mask)
            x, adj = diff_pool(z, adj, s, mask)
            mask = None
        logits = self.head(torch.cat(readouts, dim=-1))
        return PoolOutput(logits, link, entropy, assignments)


class DiffPoolDet(nn.Module):
    """DiffPool-Det (Table 1): the hierarchy of :class:`DiffPoolNet` with ``S`` from a deterministic clustering.

    Level ``l`` embeds with its own :class:`SAGEStack` (Eq. 1) and pools with Eqs. (3)-(4) using the hard
    assignment of :func:`reprolab.diffpool.graclus.hard_assignments` on that level's adjacency (no assignment
    GNN, no auxiliary losses). Same readout and classifier as DiffPool.
    """

    def __init__(
        self, in_features: int, num_classes: int, max_nodes: int, *, hidden: int = 30, embed: int = 30,
        layers: int = 3, num_pool: int = 1, assign_ratio: float = 0.1, mlp_hidden: int = 50,
        dropout: float = 0.0, batch_norm: bool = True, conv: str = "sage_mean",
    ) -> None:
        super().__init__()
        self.clusters = cluster_counts(max_nodes, assign_ratio, num_pool)
        self.embed_gnns = nn.ModuleList()
        width = in_features
        for _ in range(num_pool + 1):
            gnn = SAGEStack(width, hidden, embed, layers=layers, normalize=True, batch_norm=batch_norm, conv=conv)
            self.embed_gnns.append(gnn)
            width = gnn.out_channels
        self.head = mlp_head(width * (num_pool + 1), mlp_hidden, num_classes, dropout)
        self._cache: dict[bytes, torch.Tensor] = {}

    def _assign(self, level: int, adj: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Hard assignments, memoised per level and adjacency (they never change during training)."""
        from reprolab.diffpool.graclus import hard_assignments

        n = adj.shape[1]
        sizes = mask.sum(dim=1).long().tolist() if mask is not None else [n] * adj.shape[0]
        out = adj.new_zeros(adj.shape[0], n, self.clusters[level])
        for b, size in enumerate(sizes):
            # keyed by the real block only, so the same graph padded differently in two batches hits the cache
            real = adj[b : b + 1, :size, :size]
            key = bytes([level]) + size.to_bytes(4, "little") + real.detach().cpu().numpy().tobytes()
            if key not in self._cache:
                self._cache[key] = hard_assignments(real, None, self.clusters[level])[0]
            out[b, :size] = self._cache[key].to(out.dtype)
        return out

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> PoolOutput:
        readouts, assignments = [], []
        for level, embed_gnn in enumerate(self.embed_gnns):
            z = embed_gnn(x, adj, mask)
            readouts.append(masked_readout(z, mask, "max"))
            if level == len(self.clusters):
                break
            s = self._assign(level, adj, mask).to(z.dtype)
            x = s.transpose(1, 2) @ z  # Eq. (3)
            adj = s.transpose(1, 2) @ adj @ s  # Eq. (4)
            assignments.append(s)
            mask = None
        zero = x.new_zeros(())
        return PoolOutput(self.head(torch.cat(readouts, dim=-1)), zero, zero, assignments)


class GraphSAGEPool(nn.Module):
    """The paper's flat baseline: GraphSAGE (same :class:`SAGEStack`) then a global ``mean``/``sum``/``max``
    readout of all nodes and the same MLP classifier (Sec. 4.1, "GraphSAGE with global mean-pooling")."""

    def __init__(
        self, in_features: int, num_classes: int, *, hidden: int = 30, embed: int = 30, layers: int = 3,
        readout: str = "mean", mlp_hidden: int = 50, dropout: float = 0.0, batch_norm: bool = True,
        conv: str = "sage_mean",
    ) -> None:
        super().__init__()
        self.readout = readout
        self.gnn = SAGEStack(in_features, hidden, embed, layers=layers, normalize=True, batch_norm=batch_norm,
                             conv=conv)
        self.head = mlp_head(self.gnn.out_channels, mlp_hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor, mask: torch.Tensor | None = None) -> PoolOutput:
        z = self.gnn(x, adj, mask)
        logits = self.head(masked_readout(z, mask, self.readout))
        zero = x.new_zeros(())
        return PoolOutput(logits, zero, zero, [])
