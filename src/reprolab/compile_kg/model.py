"""GraIL (Teru et al., ICML 2020) and CoMPILE (Mai et al., AAAI 2021) scoring a batch of subgraphs.

Both models read a :class:`~reprolab.compile_kg.subgraph.SubgraphBatch` and return one score per
subgraph (higher = more plausible). Node input features are the one-hot double-radius labels
``onehot(d_h) (+) onehot(d_t)`` (GraIL Sec. 3.2), so neither model has entity embeddings: both are
inductive. Aggregations are scatter-sums over edges, so scores do not depend on the order of nodes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolab.compile_kg.subgraph import SubgraphBatch

__all__ = ["CoMPILE", "GraIL", "build_model", "label_features"]


def label_features(batch: SubgraphBatch, num_labels: int) -> Tensor:
    """One-hot double-radius labels, ``n x 2 num_labels`` (GraIL Sec. 3.2, 'node features')."""
    d_h = nn.functional.one_hot(batch.node_label[:, 0], num_labels)
    d_t = nn.functional.one_hot(batch.node_label[:, 1], num_labels)
    return torch.cat([d_h, d_t], dim=1).float()


def _scatter_sum(values: Tensor, index: Tensor, size: int) -> Tensor:
    out = values.new_zeros((size, *values.shape[1:]))
    return out.index_add_(0, index, values)


def _scatter_mean(values: Tensor, index: Tensor, size: int) -> Tensor:
    total = _scatter_sum(values, index, size)
    count = torch.bincount(index, minlength=size).clamp(min=1).to(values.dtype)
    return total / count.unsqueeze(1)


class RGCNBasisLayer(nn.Module):
    """One GraIL layer (GraIL Eq. 2-4): R-GCN with basis decomposition and edge attention.

    ``W_r = sum_b a_rb V_b`` (Eq. 3, basis decomposition); the message of edge ``j -r-> i`` is
    ``alpha_ijr W_r h_j`` with the attention (Eq. 4)
    ``alpha = sigmoid(A_2 ReLU(A_1 [h_i (+) h_j (+) e^a_r (+) e^a_{r_t}] + b_1) + b_2)``, where ``r_t`` is the
    target relation; the update is ``h_i' = ReLU(sum messages + W_self h_i)`` (Eq. 2). Messages follow edge
    directions (source to target), as in the official code. ``edge_dropout`` drops whole messages while
    training and rescales the kept ones (GraIL's ``edge_dropout``). Deviation: the official self-loop term
    reaches only nodes with an incoming edge; here every node gets ``W_self h_i``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, num_relations: int, *, num_bases: int, attn_rel_dim: int,
        edge_dropout: float,
    ) -> None:
        super().__init__()
        self.V = nn.Parameter(torch.empty(num_bases, in_dim, out_dim))
        self.a = nn.Parameter(torch.empty(num_relations, num_bases))
        self.W_self = nn.Linear(in_dim, out_dim, bias=False)
        self.attn_rel = nn.Embedding(num_relations, attn_rel_dim)
        self.A_1 = nn.Linear(2 * in_dim + 2 * attn_rel_dim, in_dim)  # hidden size = in_dim, as in the code
        self.A_2 = nn.Linear(in_dim, 1)
        self.edge_dropout = edge_dropout
        nn.init.xavier_uniform_(self.V)
        nn.init.xavier_uniform_(self.a)

    def forward(self, h: Tensor, batch: SubgraphBatch) -> Tensor:
        alpha = self._attention(h, batch)
        if self.training and self.edge_dropout > 0:
            keep = torch.rand(alpha.shape, device=alpha.device) >= self.edge_dropout
            alpha = alpha * keep / (1.0 - self.edge_dropout)  # nn.Dropout on per-edge weights, as in the code
        return torch.relu(self._aggregate(h, batch, alpha) + self.W_self(h))

    def _attention(self, h: Tensor, batch: SubgraphBatch) -> Tensor:
        """Eq. 4, with ``A_1`` split into its four blocks, each applied before the gather."""
        src, dst = batch.edge_index
        d, k = h.shape[1], self.attn_rel.embedding_dim
        A_i, A_j, A_r, A_t = self.A_1.weight.split([d, d, k, k], dim=1)
        rel = self.attn_rel.weight
        pre = (h @ A_i.T)[dst] + (h @ A_j.T)[src] + (rel @ A_r.T)[batch.edge_type]
        pre = pre + (rel @ A_t.T + self.A_1.bias)[batch.relation][batch.edge_graph]
        return torch.sigmoid(self.A_2(torch.relu(pre)))

    def _aggregate(self, h: Tensor, batch: SubgraphBatch, alpha: Tensor) -> Tensor:
        """``sum_{j -r-> i} alpha_ijr W_r h_j`` for every node ``i`` (Eq. 2-3), in the cheapest of three orders.

        * few relations: ``W_r h_j`` for every node and relation, gathered per edge;
        * many relations, ``in_dim >= out_dim``: ``V_b h_j`` for every node, combined per edge with ``a_rb``;
        * many relations, ``in_dim < out_dim`` (the first layer, whose input is the one-hot labels): the
          inputs are summed per basis first, ``z_ib = sum_e alpha_e a_{r_e b} h_j``, then transformed once,
          ``sum_b V_b^T z_ib``; the per-edge tensor is ``B x in_dim`` instead of ``B x out_dim`` wide.

        The three are the same sum, reassociated (equal up to float rounding).
        """
        src, dst = batch.edge_index
        num_relations, num_bases = self.a.shape
        in_dim, out_dim = self.V.shape[1], self.V.shape[2]
        n = h.shape[0]
        if num_relations * n <= num_bases * len(src):
            W = torch.einsum("rb,bio->iro", self.a, self.V).reshape(in_dim, num_relations * out_dim)
            per_relation = (h @ W).view(-1, out_dim)  # row j * R + r holds W_r h_j
            return _scatter_sum(alpha * per_relation[src * num_relations + batch.edge_type], dst, n)
        coef = self.a[batch.edge_type]  # m x B
        if in_dim < out_dim:
            weighted = ((alpha * coef).unsqueeze(2) * h[src].unsqueeze(1)).reshape(len(src), num_bases * in_dim)
            summed = _scatter_sum(weighted, dst, n)  # n x (B in_dim), block b = z_ib
            return summed @ self.V.reshape(num_bases * in_dim, out_dim)
        V = self.V.permute(1, 0, 2).reshape(in_dim, num_bases * out_dim)
        per_basis = (h @ V).view(-1, num_bases, out_dim)[src]
        message = (per_basis * coef.unsqueeze(2)).sum(1)
        return _scatter_sum(alpha * message, dst, n)


class GraIL(nn.Module):
    """GraIL's subgraph scorer (Teru et al. 2020, Sec. 3.3, Eq. 5).

    ``score(h, r, t) = W^T [h_G (+) h_h (+) h_t (+) e_r]``, where the node representations are the
    concatenation of all ``L`` R-GCN layer outputs (JK connection), ``h_G`` is their mean over the
    subgraph's nodes, and ``e_r`` is an embedding of the target relation.
    """

    def __init__(
        self, num_relations: int, num_labels: int, *, emb_dim: int = 32, rel_emb_dim: int = 32,
        attn_rel_emb_dim: int = 32, num_layers: int = 3, num_bases: int = 4, edge_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        dims = [2 * num_labels] + [emb_dim] * num_layers
        self.layers = nn.ModuleList(
            RGCNBasisLayer(
                dims[i], dims[i + 1], num_relations, num_bases=num_bases, attn_rel_dim=attn_rel_emb_dim,
                edge_dropout=edge_dropout,
            )
            for i in range(num_layers)
        )
        self.rel_emb = nn.Embedding(num_relations, rel_emb_dim)
        self.W = nn.Linear(3 * num_layers * emb_dim + rel_emb_dim, 1)

    def forward(self, batch: SubgraphBatch) -> Tensor:
        h = label_features(batch, self.num_labels)
        outputs = []
        for layer in self.layers:
            h = layer(h, batch)
            outputs.append(h)
        node_repr = torch.cat(outputs, dim=1)
        h_graph = _scatter_mean(node_repr, batch.node_graph, batch.num_graphs)
        features = [h_graph, node_repr[batch.head], node_repr[batch.tail], self.rel_emb(batch.relation)]
        return self.W(torch.cat(features, dim=1)).squeeze(1)


READOUTS = ("order_free", "bigru")
EDGE_UPDATES = ("scaled", "unscaled")


class CoMPILE(nn.Module):
    """CoMPILE's communicative message passing over the directed subgraph (Mai et al. 2021, Sec. 3).

    Node states ``h_v`` and edge states ``m_e`` are updated in alternation for ``depth - 1`` rounds:

    * inputs: ``h_v^0 = ReLU(W_in^n x_v)`` from the label features, and ``m_e^0 = ReLU(W_in^e [x_u (+) r_e
      (+) x_v])`` for an edge ``e = u -r_e-> v`` (edge = head features, relation embedding, tail features);
    * target-relation-aware attention: ``alpha_e = sigmoid(W_2 ReLU(W_1 [h_h + r_t - h_t (+)
      h_u + r_e - h_v]))``; it compares the translation of the edge with that of the target triple;
    * edge -> node (directed: a node gathers its *incoming* edges only):
      ``h_v <- ReLU(W_n (h_v + sum_{e: u -> v} alpha_e m_e))``;
    * node -> edge: ``m_e <- ReLU(m_e^0 + W_e ReLU(m'_e + tanh(h_u + r_e - h_v)))``, then dropout, where
      ``m'_e = alpha_e m_e`` is the attention-scaled edge state the node update just used (the official
      ``graph_classifier.py`` overwrites ``message_edge`` by ``message_edge * attention`` before the update;
      ``edge_update="scaled"``, the default) or the unscaled ``m_e`` (``edge_update="unscaled"``, our
      earlier reading);
    * communicative readout: ``z_v = W_c [sum_{e -> v} alpha_e m_e (+) h_v (+) h_v^0]`` and
      ``h_v^* = ReLU(W_o ReLU(z_v))``;
    * scoring: ``s = w_2^T (W_1' tanh(h^*_h + r_t - h^*_t))``, a TransE-like combination of the final
      head, relation and tail states.

    Readout (``readout``): the official code reads the nodes of each subgraph with a bidirectional GRU taken
    over from CMPNN (``h_v^* = ReLU(W_o ReLU(BiGRU(ReLU(z + b))_v))``, the GRU started from the max over the
    subgraph's nodes) -- ``readout="bigru"``. A GRU over a node sequence makes the score depend on the order
    of the nodes, which a subgraph does not have; ours orders each subgraph as head, tail, then the other
    nodes by entity id (GraIL's extraction order) and packs the sequences, where CMPNN runs over zero padding.
    The default ``readout="order_free"`` replaces the GRU by the step above, so the score is invariant to
    node order (the subgraph mean the GRU also fed is unused by the official score).
    """

    def __init__(
        self, num_relations: int, num_labels: int, *, emb_dim: int = 32, depth: int = 3, dropout: float = 0.5,
        readout: str = "order_free", edge_update: str = "scaled",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if edge_update not in EDGE_UPDATES:
            raise ValueError(f"edge_update must be one of {EDGE_UPDATES}, got {edge_update!r}")
        self.readout = readout
        self.edge_update = edge_update
        self.num_labels = num_labels
        self.depth = depth
        node_dim = 2 * num_labels
        self.relation_emb = nn.Parameter(torch.randn(num_relations, emb_dim))
        self.W_in_node = nn.Linear(node_dim, emb_dim, bias=False)
        self.W_in_edge = nn.Linear(2 * node_dim + emb_dim, emb_dim, bias=False)
        self.W_node = nn.ModuleList(nn.Linear(emb_dim, emb_dim, bias=False) for _ in range(depth - 1))
        self.W_edge = nn.ModuleList(nn.Linear(emb_dim, emb_dim, bias=False) for _ in range(depth - 1))
        self.attn_1 = nn.ModuleList(nn.Linear(2 * emb_dim, emb_dim, bias=False) for _ in range(depth))
        self.attn_2 = nn.ModuleList(nn.Linear(emb_dim, 1, bias=False) for _ in range(depth))
        self.W_communicate = nn.Linear(3 * emb_dim, emb_dim, bias=False)
        if readout == "bigru":
            self.gru = nn.GRU(emb_dim, emb_dim, batch_first=True, bidirectional=True)
            self.gru_bias = nn.Parameter(torch.empty(emb_dim).uniform_(-emb_dim**-0.5, emb_dim**-0.5))
            self.W_o = nn.Linear(2 * emb_dim, emb_dim)
        else:
            self.W_o = nn.Linear(emb_dim, emb_dim)
        self.score_1 = nn.Linear(emb_dim, 16)
        self.score_2 = nn.Linear(16, 1)
        self.dropout_rate = dropout

    def _attention(self, level: int, h: Tensor, batch: SubgraphBatch, edge_translation: Tensor) -> Tensor:
        """``sigmoid(W_2 ReLU(W_1 [h_h + r_t - h_t (+) h_u + r_e - h_v]))`` per edge.

        ``W_1`` is split into its two blocks; the target block is applied once per subgraph, then gathered.
        """
        emb = self.relation_emb.shape[1]
        W_target, W_edge = self.attn_1[level].weight.split([emb, emb], dim=1)
        target = h[batch.head] + self.relation_emb[batch.relation] - h[batch.tail]  # B x emb
        hidden = torch.relu((target @ W_target.T)[batch.edge_graph] + edge_translation @ W_edge.T)
        return torch.sigmoid(self.attn_2[level](hidden))

    def node_states(self, batch: SubgraphBatch) -> Tensor:
        """The final node states ``h^*`` (``n x emb_dim``) after the communicative kernel."""
        x = label_features(batch, self.num_labels)
        src, dst = batch.edge_index
        n, emb = x.shape[0], self.relation_emb.shape[1]
        r_edge = self.relation_emb[batch.edge_type]
        h0 = torch.relu(self.W_in_node(x))
        # W_in_edge [x_u (+) r_e (+) x_v], its three blocks applied before the gathers
        W_u, W_r, W_v = self.W_in_edge.weight.split([x.shape[1], emb, x.shape[1]], dim=1)
        m0 = torch.relu((x @ W_u.T)[src] + (self.relation_emb @ W_r.T)[batch.edge_type] + (x @ W_v.T)[dst])
        h, m = h0, m0
        translation = h[src] + r_edge - h[dst]  # h_u + r_e - h_v, shared by the attention and the edge update
        alpha = self._attention(0, h, batch, translation)
        for level in range(self.depth - 1):
            scaled = alpha * m
            incoming = _scatter_sum(scaled, dst, n)
            h = torch.relu(self.W_node[level](h + incoming))
            if self.edge_update == "scaled":  # the official code overwrites m by alpha * m before the update
                m = scaled
            translation = h[src] + r_edge - h[dst]
            m = torch.relu(m0 + self.W_edge[level](torch.relu(m + torch.tanh(translation))))
            m = self._dropout(m)
            alpha = self._attention(level + 1, h, batch, translation)
        incoming = _scatter_sum(alpha * m, dst, n)
        z = self.W_communicate(torch.cat([incoming, h, h0], 1))
        read = torch.relu(self._bigru(z, batch)) if self.readout == "bigru" else torch.relu(z)  # as the code
        return self._dropout(torch.relu(self.W_o(read)))

    def _bigru(self, z: Tensor, batch: SubgraphBatch) -> Tensor:
        """CMPNN's batched bidirectional GRU over each subgraph's nodes (head, tail, then by position)."""
        n = z.shape[0]
        rank = torch.full((n,), 2, dtype=torch.long, device=z.device)
        rank[batch.tail] = 1
        rank[batch.head] = 0
        order = torch.argsort(batch.node_graph * (3 * n) + rank * n + torch.arange(n, device=z.device))
        message = torch.relu(z + self.gru_bias)
        counts = batch.nodes_per_graph()
        sequences = torch.split(message[order], counts.tolist())
        padded = nn.utils.rnn.pad_sequence(list(sequences), batch_first=True)
        start = message.new_zeros(batch.num_graphs, message.shape[1]).scatter_reduce(
            0, batch.node_graph[:, None].expand_as(message), message, "amax", include_self=False
        )
        packed = nn.utils.rnn.pack_padded_sequence(padded, counts.cpu(), batch_first=True, enforce_sorted=False)
        packed = _packed_bigru(self.gru, packed, start.unsqueeze(0).repeat(2, 1, 1).contiguous())
        output, _ = nn.utils.rnn.pad_packed_sequence(packed, batch_first=True)
        steps = torch.arange(padded.shape[1], device=z.device)
        flat = output[steps[None, :] < counts[:, None].to(z.device)]  # graph-major, sequence order = ``order``
        result = flat.new_empty(n, flat.shape[1])
        result[order] = flat
        return result

    def _dropout(self, x: Tensor) -> Tensor:
        """Inverted dropout (as ``nn.Dropout``), drawn with ``rand`` which is cheaper than ``bernoulli_``."""
        if not self.training or self.dropout_rate <= 0:
            return x
        keep = torch.rand_like(x) >= self.dropout_rate
        return x * keep / (1.0 - self.dropout_rate)

    def forward(self, batch: SubgraphBatch) -> Tensor:
        h = self.node_states(batch)
        r_target = self.relation_emb[batch.relation]
        return self.score_2(self.score_1(torch.tanh(h[batch.head] + r_target - h[batch.tail]))).squeeze(1)


_GRU_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _gru_cell(gates_in: Tensor, hidden: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """One GRU step from the precomputed input gates, with the operations (and their order) of ATen's CPU
    ``GRUCell``, so that the result is bit-identical to ``nn.GRU``'s."""
    in_reset, in_update, in_new = gates_in.unsafe_chunk(3, 1)
    h_reset, h_update, h_new = nn.functional.linear(hidden, w_hh, b_hh).unsafe_chunk(3, 1)
    reset = h_reset.add_(in_reset).sigmoid_()
    update = h_update.add_(in_update).sigmoid_()
    new = in_new.add(h_new.mul_(reset)).tanh_()
    return (hidden - new).mul_(update).add_(new)


def _packed_direction(gates_in: Tensor, batch_sizes: list[int], initial: Tensor, w_hh: Tensor, b_hh: Tensor,
                      *, reverse: bool) -> Tensor:
    """One direction of a one-layer GRU over a packed sequence, step by step as ATen's ``PackedLayer`` /
    ``ReversedPackedLayer`` (the batch shrinks as sequences end; backwards it grows from ``initial``)."""
    steps = torch.split(gates_in, batch_sizes)
    outputs: list[Tensor] = [gates_in] * len(batch_sizes)
    order = range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes))
    last = batch_sizes[-1] if reverse else batch_sizes[0]
    hidden = initial.narrow(0, 0, last)
    for i in order:
        size = batch_sizes[i]
        if size < last:
            hidden = hidden.narrow(0, 0, size)
        elif size > last:
            hidden = torch.cat([hidden, initial.narrow(0, last, size - last)])
        last = size
        hidden = _gru_cell(steps[i], hidden, w_hh, b_hh)
        outputs[i] = hidden
    return torch.cat(outputs, 0)


def _packed_bigru(gru: nn.GRU, packed: nn.utils.rnn.PackedSequence, initial: Tensor) -> nn.utils.rnn.PackedSequence:
    """``gru(packed, initial)[0]``: for training a one-layer bidirectional ``gru`` on the CPU, a replay that is
    bit-identical in value and gradient, in linear rather than quadratic time; otherwise (no gradient, CUDA, another
    GRU shape) ``gru`` itself.

    ATen's packed loop takes each step's input with ``narrow`` on the whole sequence's gates; the backward of
    every ``narrow`` fills a zero tensor of the whole size, so a backward pass costs steps x total (those fills were
    ~60 % of a CoMPILE training step on fb237_v1, whose subgraphs reach ~1,000 nodes). Here the gates are split
    once, whose backward is a single concatenation. A test checks the identity against the installed torch.
    """
    replayable = gru.num_layers == 1 and gru.bidirectional and gru.bias and not gru.proj_size  # CoMPILE's GRU
    if not (replayable and packed.data.device.type == "cpu" and torch.is_grad_enabled()):
        return gru(packed, initial)[0]  # evaluation and CUDA: nothing to gain
    sizes = packed.batch_sizes.tolist()
    hidden = initial.index_select(1, packed.sorted_indices) if packed.sorted_indices is not None else initial
    directions = []
    for index, suffix in enumerate(("", "_reverse")):
        w_ih, w_hh, b_ih, b_hh = (getattr(gru, f"{name}_l0{suffix}") for name in _GRU_PARAMETERS)
        gates_in = nn.functional.linear(packed.data, w_ih, b_ih)  # all steps at once, as ATen on the CPU
        directions.append(_packed_direction(gates_in, sizes, hidden[index], w_hh, b_hh, reverse=bool(index)))
    return nn.utils.rnn.PackedSequence(
        torch.cat(directions, -1), packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
    )


def build_model(name: str, num_relations: int, num_labels: int, **kwargs: float | int) -> nn.Module:
    """``"grail"`` or ``"compile"`` with the given hyperparameters."""
    if name == "grail":
        return GraIL(num_relations, num_labels, **kwargs)  # type: ignore[arg-type]
    if name == "compile":
        return CoMPILE(num_relations, num_labels, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown model {name!r}; valid: grail, compile")
