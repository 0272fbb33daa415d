"""Graph-classification data for DiffPool: a TU-format reader, the embedded synthetic set, dense batches, folds.

* :func:`read_tu_dataset` reads the TU graph-kernel text format (Morris et al., 2020, "TUDataset") from a
  local folder, with no download: ``NAME_A.txt``, ``NAME_graph_indicator.txt``, ``NAME_graph_labels.txt`` and
  the optional ``NAME_node_labels.txt`` / ``NAME_node_attributes.txt``. Every malformed line raises a
  :class:`~reprolab.core.errors.DataError` naming the file and the line.
* :func:`make_hierarchical_communities` generates the embedded default: graphs made of dense communities
  whose *arrangement* (the community-level graph) decides the class, so the label lives one level up the
  hierarchy, where a pooling layer is meant to look (paper Sec. 1 and 4.2, "hierarchical structure").
* :func:`to_dense` pads every graph to ``max_nodes`` with PyG's ``ToDense`` and stacks them into
  ``x [G, N, F]``, ``adj [G, N, N]``, ``mask [G, N]`` (the layout of ``DenseDataLoader``).
* :func:`stratified_folds` gives the paper's 10-fold cross-validation splits, fixed by a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from reprolab.core.errors import DataError

__all__ = [
    "DenseGraphs",
    "GraphSet",
    "make_hierarchical_communities",
    "read_tu_dataset",
    "stratified_folds",
    "to_dense",
    "write_tu_dataset",
]

META_GRAPHS = ("cycle", "path", "two_triangles", "star")


@dataclass
class GraphSet:
    """A list of graphs: ``edges[g]`` is an undirected ``[2, E]`` long tensor (each edge once per direction),
    ``x[g]`` a ``[n_g, F]`` float tensor of node features, ``y`` a ``[G]`` long tensor of classes 0..C-1.

    ``clusters[g]`` optionally holds the ground-truth community of every node (synthetic data only);
    ``class_names`` maps class indices back to the dataset's own labels.
    """

    name: str
    edges: list[torch.Tensor]
    x: list[torch.Tensor]
    y: torch.Tensor
    class_names: list[str]
    clusters: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_features(self) -> int:
        return int(self.x[0].shape[1])

    @property
    def max_nodes(self) -> int:
        return max(int(x.shape[0]) for x in self.x)

    def num_nodes(self) -> list[int]:
        return [int(x.shape[0]) for x in self.x]


@dataclass
class DenseGraphs:
    """Padded dense graphs: ``x [G, N, F]``, ``adj [G, N, N]`` (0/1, symmetric), ``mask [G, N]``, ``y [G]``."""

    x: torch.Tensor
    adj: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> DenseGraphs:
        return DenseGraphs(self.x[index], self.adj[index], self.mask[index], self.y[index])

    def to(self, device: torch.device | str) -> DenseGraphs:
        return DenseGraphs(self.x.to(device), self.adj.to(device), self.mask.to(device), self.y.to(device))


# --------------------------------------------------------------------------------------------------
# TU text format
# --------------------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based line numbers (a missing final newline loses nothing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_ints(path: Path, expected: int | None) -> list[tuple[int, list[int]]]:
    rows = []
    for number, line in _read_lines(path):
        parts = [p.strip() for p in line.split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise DataError(f"{path}:{number}: expected integers separated by commas, got {line!r}") from None
        if expected is not None and len(values) != expected:
            raise DataError(f"{path}:{number}: expected {expected} value(s), got {len(values)} in {line!r}")
        rows.append((number, values))
    return rows


def _parse_floats(path: Path) -> list[tuple[int, list[float]]]:
    rows = []
    width = None
    for number, line in _read_lines(path):
        try:
            values = [float(p) for p in line.split(",")]
        except ValueError:
            raise DataError(f"{path}:{number}: expected numbers separated by commas, got {line!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{path}:{number}: non-finite value in {line!r}")
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise DataError(f"{path}:{number}: expected {width} attributes like line 1, got {len(values)}")
        rows.append((number, values))
    return rows


def _single_column(path: Path) -> list[tuple[int, int]]:
    return [(number, values[0]) for number, values in _parse_ints(path, 1)]


def _find_name(folder: Path, name: str | None) -> str:
    if name:
        return name
    found = sorted(folder.glob("*_graph_indicator.txt"))
    if len(found) != 1:
        raise DataError(
            f"{folder}: expected exactly one NAME_graph_indicator.txt to infer the dataset name, "
            f"found {len(found)}; pass name= explicitly"
        )
    return found[0].name[: -len("_graph_indicator.txt")]


def read_tu_dataset(folder: str | Path, name: str | None = None, *, features: str = "all") -> GraphSet:
    """Read a TU-format dataset from ``folder`` (no download).

    ``features`` picks the node features: ``all`` (attributes followed by one-hot node labels, whichever
    exist), ``attributes``, ``labels`` (one-hot), ``degree`` (one-hot degree, capped at 10), or ``constant``
    (a single 1). A dataset with neither labels nor attributes falls back to ``constant`` for ``all``.
    Edge labels/attributes files are ignored (DiffPool does not use them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder with TU-format files")
    name = _find_name(folder, name)
    if features not in ("all", "attributes", "labels", "degree", "constant"):
        raise DataError(f"features: {features!r} is not one of all, attributes, labels, degree, constant")
    paths = {part: folder / f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")}
    for part, path in paths.items():
        if not path.is_file():
            raise DataError(f"{path}: required TU file missing (NAME_{part}.txt)")
    node_graph, num_graphs = _read_indicator(paths["graph_indicator"])
    num_nodes = len(node_graph)
    labels = _single_column(paths["graph_labels"])
    if len(labels) != num_graphs:
        raise DataError(
            f"{paths['graph_labels']}: {len(labels)} graph labels, but "
            f"{paths['graph_indicator'].name} names {num_graphs} graphs"
        )
    edges = _read_edges(paths["A"], node_graph)
    x = _node_features(folder, name, num_nodes, features, edges)
    return _split_graphs(name, node_graph, num_graphs, edges, x, [value for _, value in labels])


def _read_indicator(path: Path) -> tuple[list[int], int]:
    node_graph: list[int] = []
    previous = 0
    for number, graph in _single_column(path):
        if graph < 1:
            raise DataError(f"{path}:{number}: graph ids start at 1, got {graph}")
        if graph < previous:
            raise DataError(f"{path}:{number}: nodes must be grouped by graph in order; got graph {graph} "
                            f"after graph {previous}")
        if graph > previous + 1:
            raise DataError(f"{path}:{number}: graph ids must be consecutive; got {graph} after {previous}")
        node_graph.append(graph - 1)
        previous = graph
    if not node_graph:
        raise DataError(f"{path}: empty graph indicator file")
    return node_graph, previous


def _read_edges(path: Path, node_graph: list[int]) -> torch.Tensor:
    num_nodes = len(node_graph)
    pairs = []
    for number, (source, target) in _parse_ints(path, 2):
        for node in (source, target):
            if not 1 <= node <= num_nodes:
                raise DataError(f"{path}:{number}: node id {node} outside 1..{num_nodes} (the graph indicator's nodes)")
        if node_graph[source - 1] != node_graph[target - 1]:
            raise DataError(
                f"{path}:{number}: edge ({source}, {target}) joins graph {node_graph[source - 1] + 1} "
                f"and graph {node_graph[target - 1] + 1}"
            )
        pairs.append((source - 1, target - 1))
    if not pairs:
        return torch.zeros(2, 0, dtype=torch.long)
    return torch.tensor(pairs, dtype=torch.long).t()


def _node_features(folder: Path, name: str, num_nodes: int, features: str, edges: torch.Tensor) -> torch.Tensor:
    blocks = []
    attr_path = folder / f"{name}_node_attributes.txt"
    label_path = folder / f"{name}_node_labels.txt"
    if features in ("all", "attributes") and attr_path.is_file():
        rows = _parse_floats(attr_path)
        if len(rows) != num_nodes:
            raise DataError(f"{attr_path}: {len(rows)} rows, but the graph indicator has {num_nodes} nodes")
        blocks.append(torch.tensor([values for _, values in rows], dtype=torch.float32))
    if features in ("all", "labels") and label_path.is_file():
        rows = _parse_ints(label_path, None)
        if len(rows) != num_nodes:
            raise DataError(f"{label_path}: {len(rows)} rows, but the graph indicator has {num_nodes} nodes")
        first = torch.tensor([values[0] for _, values in rows], dtype=torch.long)
        blocks.append(_one_hot_codes(first))
    if features == "degree":
        both = torch.cat([edges, edges.flip(0)], dim=1).unique(dim=1) if edges.numel() else edges
        blocks.append(degree_features(both, num_nodes, 10))
    if not blocks:
        if features in ("attributes", "labels"):
            missing = attr_path if features == "attributes" else label_path
            raise DataError(f"{missing}: features={features!r} needs this file")
        blocks.append(torch.ones(num_nodes, 1))
    return torch.cat(blocks, dim=1)


def _one_hot_codes(values: torch.Tensor) -> torch.Tensor:
    codes, index = torch.unique(values, return_inverse=True)
    return torch.nn.functional.one_hot(index, len(codes)).float()


def _split_graphs(
    name: str, node_graph: list[int], num_graphs: int, edges: torch.Tensor, x: torch.Tensor, labels: list[int]
) -> GraphSet:
    graph_of = torch.tensor(node_graph)
    counts = torch.bincount(graph_of, minlength=num_graphs)
    starts = torch.cumsum(counts, 0) - counts
    edge_graph = graph_of[edges[0]] if edges.numel() else torch.zeros(0, dtype=torch.long)
    order = torch.argsort(edge_graph, stable=True)
    edges, edge_graph = edges[:, order], edge_graph[order]
    edge_counts = torch.bincount(edge_graph, minlength=num_graphs).tolist()
    graph_edges, graph_x, offset = [], [], 0
    for g in range(num_graphs):
        local = edges[:, offset : offset + edge_counts[g]] - starts[g]
        offset += edge_counts[g]
        local = torch.cat([local, local.flip(0)], dim=1).unique(dim=1) if local.numel() else local
        graph_edges.append(local[:, local[0] != local[1]] if local.numel() else local)
        graph_x.append(x[starts[g] : starts[g] + counts[g]])
    codes = sorted(set(labels))
    lookup = {code: i for i, code in enumerate(codes)}
    y = torch.tensor([lookup[value] for value in labels], dtype=torch.long)
    return GraphSet(name, graph_edges, graph_x, y, [str(code) for code in codes])


def write_tu_dataset(graphs: GraphSet, folder: str | Path, name: str, *, node_labels: Sequence[int] | None = None) -> Path:
    """Write ``graphs`` in the TU text format (attributes from ``x``); used by tests and by users converting data."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    edge_lines, indicator, attributes, offset = [], [], [], 0
    for g, (edges, x) in enumerate(zip(graphs.edges, graphs.x)):
        for source, target in edges.t().tolist():
            edge_lines.append(f"{source + offset + 1}, {target + offset + 1}")
        indicator += [str(g + 1)] * x.shape[0]
        attributes += [", ".join(f"{v:.6f}" for v in row) for row in x.tolist()]
        offset += x.shape[0]
    files = {
        "A": edge_lines,
        "graph_indicator": indicator,
        "graph_labels": [graphs.class_names[int(c)] for c in graphs.y],
        "node_attributes": attributes,
    }
    if node_labels is not None:
        files["node_labels"] = [str(v) for v in node_labels]
    for part, lines in files.items():
        (folder / f"{name}_{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------------------------------
# Embedded synthetic default
# --------------------------------------------------------------------------------------------------
def meta_graph_edges(kind: str) -> list[tuple[int, int]]:
    """The community-level graph of each class; every one has 6 communities and degrees 1-3."""
    if kind == "cycle":
        return [(i, (i + 1) % 6) for i in range(6)]
    if kind == "path":
        return [(i, i + 1) for i in range(5)]
    if kind == "two_triangles":
        return [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (2, 3)]
    if kind == "star":
        return [(0, i) for i in range(1, 4)] + [(1, 4), (2, 5)]
    raise ValueError(f"unknown meta-graph {kind!r}; valid: {', '.join(META_GRAPHS)}")


def make_hierarchical_communities(
    num_graphs: int = 240,
    *,
    classes: Sequence[str] = META_GRAPHS,
    community_size: tuple[int, int] = (4, 8),
    p_in: float = 0.8,
    bridges: int = 1,
    noise_edges: float = 0.0,
    max_degree: int = 10,
    seed: int = 0,
) -> GraphSet:
    """Graphs of six dense communities whose arrangement (the community-level graph) is the class.

    Each community is an Erdos-Renyi block (``p_in``, size drawn from ``community_size``); two communities
    adjacent in the class's meta-graph (cycle, path, two triangles joined by an edge, or a tree) are joined
    by ``bridges`` random edges; ``noise_edges`` adds that fraction of random edges. Node features are the
    one-hot degree (capped at ``max_degree``), the usual choice for featureless graphs, so the label can
    only come from structure, and from structure above the community level: every class has the same
    kind of communities, and the classes differ only in how the six communities are wired together.
    """
    generator = torch.Generator().manual_seed(seed)
    edges_out, x_out, y_out, clusters_out = [], [], [], []
    for g in range(num_graphs):
        label = g % len(classes)
        edges, cluster = _one_community_graph(classes[label], community_size, p_in, bridges, noise_edges, generator)
        x_out.append(degree_features(edges, cluster.shape[0], max_degree))
        edges_out.append(edges)
        y_out.append(label)
        clusters_out.append(cluster)
    order = torch.randperm(num_graphs, generator=generator).tolist()
    return GraphSet(
        "hierarchical-communities",
        [edges_out[i] for i in order],
        [x_out[i] for i in order],
        torch.tensor([y_out[i] for i in order], dtype=torch.long),
        list(classes),
        [clusters_out[i] for i in order],
    )


def degree_features(edges: torch.Tensor, num_nodes: int, max_degree: int) -> torch.Tensor:
    """One-hot node degree, degrees above ``max_degree`` sharing the last slot."""
    degree = torch.bincount(edges[0], minlength=num_nodes) if edges.numel() else torch.zeros(num_nodes)
    return torch.nn.functional.one_hot(degree.long().clamp(max=max_degree), max_degree + 1).float()


def _one_community_graph(
    kind: str, size: tuple[int, int], p_in: float, bridges: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    sizes = torch.randint(size[0], size[1] + 1, (6,), generator=generator).tolist()
    cluster = torch.cat([torch.full((s,), c, dtype=torch.long) for c, s in enumerate(sizes)])
    n = cluster.shape[0]
    same = cluster[:, None] == cluster[None, :]
    upper = torch.rand(n, n, generator=generator) < p_in
    adj = torch.triu(upper & same, diagonal=1)
    starts = [sum(sizes[:c]) for c in range(6)]
    for a, b in meta_graph_edges(kind):
        for _ in range(bridges):
            u = starts[a] + int(torch.randint(sizes[a], (1,), generator=generator))
            v = starts[b] + int(torch.randint(sizes[b], (1,), generator=generator))
            adj[min(u, v), max(u, v)] = True
    if noise > 0:
        count = int(round(noise * int(adj.sum())))
        for _ in range(count):
            u, v = torch.randint(n, (2,), generator=generator).tolist()
            if u != v:
                adj[min(u, v), max(u, v)] = True
    _connect_components(adj, cluster, starts, sizes)
    adj = adj | adj.t()
    return adj.nonzero().t().contiguous(), cluster


def _connect_components(adj: torch.Tensor, cluster: torch.Tensor, starts: list[int], sizes: list[int]) -> None:
    """Make each community connected by chaining its nodes where an ER draw left them apart."""
    for c in range(6):
        for i in range(starts[c] + 1, starts[c] + sizes[c]):
            if not (adj[starts[c] : i, i].any() or adj[i, starts[c] : i].any()):
                adj[i - 1, i] = True


# --------------------------------------------------------------------------------------------------
# Dense batches and folds
# --------------------------------------------------------------------------------------------------
def to_dense(graphs: GraphSet, max_nodes: int | None = None) -> DenseGraphs:
    """Pad every graph to ``max_nodes`` with PyG's ``ToDense`` and stack them (the DenseDataLoader layout)."""
    from torch_geometric.data import Data
    from torch_geometric.transforms import ToDense

    max_nodes = max_nodes or graphs.max_nodes
    if graphs.max_nodes > max_nodes:
        raise DataError(f"{graphs.name}: a graph has {graphs.max_nodes} nodes, more than max_nodes={max_nodes}")
    transform = ToDense(max_nodes)
    xs, adjs, masks = [], [], []
    for edges, x in zip(graphs.edges, graphs.x):
        dense = transform(Data(x=x, edge_index=edges, num_nodes=x.shape[0]))
        xs.append(dense.x)
        adjs.append((dense.adj > 0).float())
        masks.append(dense.mask)
    return DenseGraphs(torch.stack(xs), torch.stack(adjs), torch.stack(masks), graphs.y.clone())


def stratified_folds(y: torch.Tensor, folds: int, seed: int) -> list[torch.Tensor]:
    """``folds`` disjoint test index sets covering every graph, each class spread evenly, fixed by ``seed``."""
    if folds < 2:
        raise DataError(f"folds: need at least 2 folds, got {folds}")
    if folds > len(y):
        raise DataError(f"folds: {folds} folds for {len(y)} graphs")
    generator = torch.Generator().manual_seed(seed)
    assignment = torch.empty(len(y), dtype=torch.long)
    offset = 0
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        assignment[members] = (torch.arange(len(members)) + offset) % folds
        offset += len(members)
    return [torch.nonzero(assignment == k).flatten() for k in range(folds)]
