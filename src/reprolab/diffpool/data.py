"""Graph-classification data for DiffPool: a TU-format reader, the embedded synthetic set, dense batches, folds.

* :func:`read_tu_dataset` reads the TU graph-kernel text format (Morris et al., 2020, "TUDataset") from a
  local folder, with no download: ``NAME_A.txt``, ``NAME_graph_indicator.txt``, ``NAME_graph_labels.txt`` and
  the optional ``NAME_node_labels.txt`` / ``NAME_node_attributes.txt``. Every malformed line raises a
  :class:`~reprolab.core.errors.DataError` naming the file and the line.
* :func:`make_hierarchical_communities` generates the embedded default: graphs made of ring and clique
  communities where the class is the *number of ring communities*, so the label lives one level up the
  hierarchy, where a pooling layer is meant to look (paper Sec. 1 and 4.2, "hierarchical structure").
* :func:`read_gin_dataset` reads the GIN/DGCNN text format (``NAME.txt`` and ``10fold_idx/``), from a folder
  or straight from its zip (D&D here), with the format's own 10-fold split.
* :func:`find_dataset` resolves a dataset name (``ENZYMES``, ``D&D``, ``REDDIT-MULTI-12K``, any TU name) to
  whichever of the two layouts is present under the data home.
* :meth:`GraphSet.batch` pads a *batch* of graphs to that batch's largest graph, and
  :func:`size_bucketed_batches` groups graphs of similar size, so padding does not grow with the largest
  graph of the whole set (PROTEINS: 620 nodes, median 26).
* :func:`to_dense` pads every graph to ``max_nodes`` with PyG's ``ToDense`` and stacks them into
  ``x [G, N, F]``, ``adj [G, N, N]``, ``mask [G, N]`` (the layout of ``DenseDataLoader``).
* :func:`stratified_folds` gives the paper's 10-fold cross-validation splits, fixed by a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolab.core.errors import DataError
from reprolab.core.readers import read_text_utf8

__all__ = [
    "DenseGraphs",
    "GraphSet",
    "find_dataset",
    "make_hierarchical_communities",
    "read_gin_dataset",
    "read_tu_dataset",
    "size_bucketed_batches",
    "stratified_folds",
    "to_dense",
    "write_tu_dataset",
]



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
    folds: list[torch.Tensor] | None = None  # the format's own test folds (GIN/DGCNN ``10fold_idx``), if any

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: torch.Tensor | Sequence[int]) -> GraphSet:
        """The graphs at ``index``, in that order (fold information is dropped)."""
        keep = [int(i) for i in index]
        return GraphSet(self.name, [self.edges[g] for g in keep], [self.x[g] for g in keep],
                        self.y[torch.as_tensor(keep, dtype=torch.long)], self.class_names,
                        [self.clusters[g] for g in keep] if self.clusters else None)

    def sizes(self) -> torch.Tensor:
        return torch.tensor([int(x.shape[0]) for x in self.x], dtype=torch.long)

    def batch(self, index: torch.Tensor | Sequence[int] | None = None, device: torch.device | str = "cpu"
              ) -> DenseGraphs:
        """Graphs at ``index`` as one dense batch padded to the batch's own largest graph (not the set's).

        Built from the edge lists in one scatter, so memory is ``B n_max^2`` for this batch only.
        """
        keep = list(range(len(self))) if index is None else [int(i) for i in index]
        sizes = [int(self.x[g].shape[0]) for g in keep]
        n = max(sizes)
        x = torch.nn.utils.rnn.pad_sequence([self.x[g] for g in keep], batch_first=True)
        adj = torch.zeros(len(keep), n, n)
        edges = [self.edges[g] for g in keep]
        owner = torch.cat([torch.full((e.shape[1],), b, dtype=torch.long) for b, e in enumerate(edges)])
        if owner.numel():
            pairs = torch.cat(edges, dim=1)
            adj[owner, pairs[0], pairs[1]] = 1.0
        mask = torch.arange(n).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
        y = self.y[torch.as_tensor(keep, dtype=torch.long)]
        return DenseGraphs(x, adj, mask, y).to(device)

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
    text = read_text_utf8(path, what="TU file")
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
        if any(abs(v) >= 2**63 for v in values):  # beyond what torch's int64 holds
            raise DataError(f"{path}:{number}: value outside the 64-bit integer range in {line[:60]!r}")
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
    _require_two_classes([value for _, value in labels], str(paths["graph_labels"]))
    edges = _read_edges(paths["A"], node_graph)
    x = _node_features(folder, name, num_nodes, features, edges)
    return _split_graphs(name, node_graph, num_graphs, edges, x, [value for _, value in labels])


def _require_two_classes(labels: Sequence[Any], where: str) -> None:
    """Graph classification needs two classes at least; one class would only fail later, inside scikit-learn."""
    if len(set(labels)) < 2:
        only = labels[0] if labels else "none"
        raise DataError(f"{where}: every graph has the same label ({only}); classification needs at least 2 classes")


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
    graph_edges, graph_x = [], []
    starts_list, counts_list = starts.tolist(), counts.tolist()
    for g, local in enumerate(edges.split(edge_counts, dim=1)):
        local = local - starts_list[g]
        graph_edges.append(_symmetric_simple(local, counts_list[g]))
        graph_x.append(x[starts_list[g] : starts_list[g] + counts_list[g]])
    codes = sorted(set(labels))
    lookup = {code: i for i, code in enumerate(codes)}
    y = torch.tensor([lookup[value] for value in labels], dtype=torch.long)
    return GraphSet(name, graph_edges, graph_x, y, [str(code) for code in codes])


def _symmetric_simple(edges: torch.Tensor, n: int) -> torch.Tensor:
    """Both directions of every edge, once each, no self-loops, sorted (a 1-D unique on ``u * n + v``,
    much faster than ``unique(dim=1)`` on D&D's 1.7M directed edges)."""
    if not edges.numel():
        return edges
    keys = torch.cat([edges[0] * n + edges[1], edges[1] * n + edges[0]]).unique()
    pairs = torch.stack([keys // n, keys % n])
    return pairs[:, pairs[0] != pairs[1]]


def write_tu_dataset(
    graphs: GraphSet, folder: str | Path, name: str, *, node_labels: Sequence[int] | None = None
) -> Path:
    """Write ``graphs`` in the TU text format (attributes from ``x``; class indices as labels when the class
    names are not integers); used by tests and by users converting their own graphs."""
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
        "graph_labels": _label_codes(graphs),
        "node_attributes": attributes,
    }
    if node_labels is not None:
        files["node_labels"] = [str(v) for v in node_labels]
    for part, lines in files.items():
        (folder / f"{name}_{part}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _label_codes(graphs: GraphSet) -> list[str]:
    """Graph labels as TU integers: the class names when they are integers, else the class indices."""
    try:
        codes = [int(name) for name in graphs.class_names]
    except ValueError:
        codes = list(range(graphs.num_classes))
    return [str(codes[int(c)]) for c in graphs.y]


# --------------------------------------------------------------------------------------------------
# GIN / DGCNN text format (D&D, COLLAB, REDDIT-MULTI, ... as distributed with the GIN and DGCNN code)
# --------------------------------------------------------------------------------------------------
GIN_LAYOUT = "<NAME>.zip or <NAME>/ holding <NAME>/<NAME>.txt and <NAME>/10fold_idx/{train,test}_idx-{1..10}.txt"


def _normalised(name: str) -> str:
    """``D&D`` -> ``dd``, ``REDDIT-MULTI-12K`` -> ``redditmulti12k``: names compared on letters and digits only."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


class _GinSource:
    """The files of one GIN-format dataset, in a zip (read in place, never extracted) or in a folder."""

    def __init__(self, path: Path, name: str) -> None:
        import zipfile

        self.path, self.zip = path, None
        if path.suffix == ".zip":
            self.zip = zipfile.ZipFile(path)
            members = [m for m in self.zip.namelist() if not m.startswith("__MACOSX") and m.endswith(".txt")]
            mains = [m for m in members if "10fold_idx" not in m and _normalised(Path(m).stem) == _normalised(name)]
            if len(mains) != 1:
                raise DataError(f"{path}: expected one {name}.txt inside the zip ({GIN_LAYOUT}), found {len(mains)}")
            self.main = mains[0]
            self.root = str(Path(self.main).parent)
        else:
            mains = [p for p in path.rglob("*.txt") if "10fold_idx" not in p.parts
                     and _normalised(p.stem) == _normalised(name)]
            if len(mains) != 1:
                raise DataError(f"{path}: expected one {name}.txt ({GIN_LAYOUT}), found {len(mains)}")
            self.main = str(mains[0])
            self.root = str(mains[0].parent)

    def label(self, member: str) -> str:
        return f"{self.path}:{member}" if self.zip is not None else member

    def lines(self, member: str) -> list[str] | None:
        """The text lines of ``member`` (None when absent)."""
        if self.zip is not None:
            try:
                data = self.zip.read(member)
            except KeyError:
                return None
        else:
            file = Path(member)
            if not file.is_file():
                return None
            data = file.read_bytes()
        try:
            return data.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise DataError(f"{self.label(member)}: not UTF-8 text ({err.reason} at byte {err.start})") from err


def read_gin_dataset(path: str | Path, name: str, *, features: str = "all") -> GraphSet:
    """Read a dataset in the GIN/DGCNN text format from a zip (in place) or a folder.

    ``NAME.txt``: line 1 the number of graphs; per graph a line ``n label`` and ``n`` node lines
    ``tag degree nbr_1 ... nbr_degree`` (0-based neighbours within the graph; anything after the neighbours,
    e.g. node attributes, is ignored). ``10fold_idx/test_idx-{1..10}.txt`` (0-based graph indices) become
    :attr:`GraphSet.folds`. ``features``: ``all``/``labels`` = one-hot node tag, ``degree``, ``constant``
    (``attributes`` is refused: this format keeps none we read). Malformed lines name the member and line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no GIN-format dataset there ({GIN_LAYOUT})")
    if features == "attributes":
        raise DataError(f"features: {path} is in the GIN format, which has node tags but no attributes; "
                        "use labels, degree or constant")
    source = _GinSource(path, name)
    lines = source.lines(source.main) or []
    edges, tags, labels = _parse_gin(lines, source.label(source.main))
    sizes = [len(t) for t in tags]
    all_tags = torch.tensor([t for graph in tags for t in graph], dtype=torch.long)
    if features in ("all", "labels"):
        x = _one_hot_codes(all_tags)
    elif features == "degree":
        x = torch.cat([degree_features(e, n, 10) for e, n in zip(edges, sizes)])
    else:
        x = torch.ones(len(all_tags), 1)
    _require_two_classes(labels, source.label(source.main))
    codes = sorted(set(labels))
    lookup = {code: i for i, code in enumerate(codes)}
    y = torch.tensor([lookup[value] for value in labels], dtype=torch.long)
    graphs = GraphSet(name, edges, list(x.split(sizes)), y, [str(code) for code in codes])
    graphs.folds = _gin_folds(source, len(sizes))
    return graphs


def _parse_gin(lines: list[str], where: str) -> tuple[list[torch.Tensor], list[list[int]], list[int]]:
    """Per graph: symmetric edge list, node tags, graph label. Errors name ``where`` and the line."""

    def header(number: int) -> tuple[int, int]:
        if number > len(lines):
            raise DataError(f"{where}:{number}: file ends before the graph header expected here")
        parts = lines[number - 1].split()
        if len(parts) < 2 or not all(p.lstrip("-").isdigit() for p in parts[:2]):
            raise DataError(f"{where}:{number}: expected a graph header 'nodes label', got {lines[number - 1][:60]!r}")
        return int(parts[0]), int(parts[1])

    if not lines or not lines[0].strip().isdigit():
        raise DataError(f"{where}:1: expected the number of graphs, got {(lines or [''])[0][:60]!r}")
    number = 2
    edges, tags, labels = [], [], []
    for _ in range(int(lines[0])):
        n, label = header(number)
        if number + n > len(lines):
            raise DataError(f"{where}:{number}: graph of {n} nodes runs past the end of the file")
        sources: list[int] = []
        targets: list[str] = []
        graph_tags = []
        for node in range(n):
            line_number = number + 1 + node
            parts = lines[line_number - 1].split()
            try:
                tag, degree = int(parts[0]), int(parts[1])
                neighbours = parts[2 : 2 + degree]
                if len(neighbours) != degree:
                    raise ValueError
            except (ValueError, IndexError):
                raise DataError(f"{where}:{line_number}: expected 'tag degree neighbours...' with degree neighbours, "
                                f"got {lines[line_number - 1][:60]!r}") from None
            graph_tags.append(tag)
            sources.extend([node] * degree)
            targets.extend(neighbours)
        try:
            target = torch.from_numpy(np.array(targets, dtype=np.int64))
        except ValueError:
            raise DataError(f"{where}:{number}: a neighbour id of this graph's nodes is not an integer") from None
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n):
            raise DataError(f"{where}:{number}: a neighbour id of this graph is outside 0..{n - 1}")
        pair = torch.stack([torch.tensor(sources, dtype=torch.long), target]) if sources else torch.zeros(2, 0).long()
        edges.append(_symmetric_simple(pair, n))
        tags.append(graph_tags)
        labels.append(label)
        number += n + 1
    if not tags:
        raise DataError(f"{where}:1: no graphs")
    return edges, tags, labels


def _gin_folds(source: _GinSource, num_graphs: int) -> list[torch.Tensor] | None:
    """The ``test_idx-k`` files as test folds (None when the dataset ships without them)."""
    folds = []
    for k in range(1, 11):
        member = str(Path(source.root) / "10fold_idx" / f"test_idx-{k}.txt")
        lines = source.lines(member)
        if lines is None:
            return None if k == 1 else _fold_error(source, member)
        index = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = int(line)
            except ValueError:
                raise DataError(f"{source.label(member)}:{number}: expected a graph index, got {line!r}") from None
            if not 0 <= value < num_graphs:
                raise DataError(f"{source.label(member)}:{number}: graph index {value} outside 0..{num_graphs - 1}")
            index.append(value)
        folds.append(torch.tensor(index, dtype=torch.long))
    covered = torch.cat(folds)
    if len(covered.unique()) != len(covered):  # D&D's 10 x 117 test graphs leave 8 graphs always in training
        raise DataError(f"{source.label(str(Path(source.root) / '10fold_idx'))}: a graph is in two test folds")
    return folds


def _fold_error(source: _GinSource, member: str) -> list[torch.Tensor]:
    raise DataError(f"{source.label(member)}: missing (the 10fold_idx folder must hold test_idx-1..10.txt)")


def find_dataset(home: Path, name: str) -> tuple[str, Path] | None:
    """Where dataset ``name`` lives under ``home``: ``("tu", folder)`` for ``TUDataset/<NAME>/`` or
    ``("gin", path)`` for ``TUDataset_gin_format/<NAME>.zip`` / ``<NAME>/`` (names compared on letters and
    digits, so ``D&D`` finds ``DD``); None when neither is there. The TU layout wins when both are."""
    key = _normalised(name)
    for kind, folder in (("tu", home / "TUDataset"), ("gin", home / "TUDataset_gin_format")):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            stem = entry.name[: -len(".zip")] if entry.name.endswith(".zip") else entry.name
            if _normalised(stem) != key or not (entry.is_dir() or entry.suffix == ".zip"):
                continue
            if kind == "tu" and not any(entry.glob("*_graph_indicator.txt")):
                continue
            return kind, entry
    return None


# --------------------------------------------------------------------------------------------------
# Embedded synthetic default
# --------------------------------------------------------------------------------------------------
def degree_features(edges: torch.Tensor, num_nodes: int, max_degree: int) -> torch.Tensor:
    """One-hot node degree, degrees above ``max_degree`` sharing the last slot."""
    degree = torch.bincount(edges[0], minlength=num_nodes) if edges.numel() else torch.zeros(num_nodes)
    return torch.nn.functional.one_hot(degree.long().clamp(max=max_degree), max_degree + 1).float()


def make_hierarchical_communities(
    num_graphs: int = 480,
    *,
    num_classes: int = 3,
    communities: tuple[int, int] = (3, 10),
    community_size: tuple[int, int] = (4, 6),
    max_degree: int = 10,
    seed: int = 0,
) -> GraphSet:
    """Graphs made of communities wired into a random tree; the class is how many communities are rings.

    Graph ``g`` has class ``c = g mod num_classes`` and ``k`` communities (``k`` uniform in ``communities``,
    at least ``c + 2``) of ``community_size`` nodes each: ``c + 1`` of them are rings (cycles), the rest
    cliques, in random order. Communities are joined by one random edge per edge of a random tree over
    them. Node features are the one-hot degree (capped at ``max_degree``), the usual choice for
    featureless graphs. The label is a count of *communities*, a property one level above the nodes: a
    flat GNN with a global mean readout sees only the fraction of ring nodes, which overlaps between
    classes because ``k`` and the community sizes vary, while a pooling layer that groups each
    community's nodes can count them (paper Sec. 1: pooling "coarsens" graphs into communities).
    ``clusters[g]`` holds the true community of every node.
    """
    if num_classes < 1 or communities[0] < 1 or communities[1] < max(communities[0], num_classes + 1):
        raise ValueError(f"communities={communities} cannot hold {num_classes} ring communities plus one clique")
    if community_size[0] < 3 or community_size[1] < community_size[0]:
        raise ValueError(f"community_size: rings need at least 3 nodes, got {community_size}")
    generator = torch.Generator().manual_seed(seed)
    edges_out, x_out, y_out, clusters_out = [], [], [], []
    for g in range(num_graphs):
        label = g % num_classes
        low = max(communities[0], label + 2)
        count = int(torch.randint(low, communities[1] + 1, (1,), generator=generator))
        rings = torch.zeros(count, dtype=torch.bool)
        rings[torch.randperm(count, generator=generator)[: label + 1]] = True
        edges, cluster = _community_tree_graph(rings, community_size, generator)
        edges_out.append(edges)
        x_out.append(degree_features(edges, cluster.shape[0], max_degree))
        y_out.append(label)
        clusters_out.append(cluster)
    order = torch.randperm(num_graphs, generator=generator).tolist()
    return GraphSet(
        "hierarchical-communities",
        [edges_out[i] for i in order],
        [x_out[i] for i in order],
        torch.tensor([y_out[i] for i in order], dtype=torch.long),
        [f"{c + 1} ring(s)" for c in range(num_classes)],
        [clusters_out[i] for i in order],
    )


def _community_tree_graph(
    rings: torch.Tensor, size: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One graph: ring or clique communities, joined along a random tree; returns (edges [2, E], cluster)."""
    count = len(rings)
    sizes = torch.randint(size[0], size[1] + 1, (count,), generator=generator).tolist()
    starts = [sum(sizes[:c]) for c in range(count)]
    cluster = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(sizes)])
    n = cluster.shape[0]
    adj = torch.zeros(n, n, dtype=torch.bool)
    for c in range(count):
        nodes = torch.arange(starts[c], starts[c] + sizes[c])
        if rings[c]:
            adj[nodes, nodes.roll(1)] = True
        else:
            adj[starts[c] : starts[c] + sizes[c], starts[c] : starts[c] + sizes[c]] = True
            adj[nodes, nodes] = False
    for c in range(1, count):
        parent = int(torch.randint(c, (1,), generator=generator))
        u = starts[c] + int(torch.randint(sizes[c], (1,), generator=generator))
        v = starts[parent] + int(torch.randint(sizes[parent], (1,), generator=generator))
        adj[u, v] = True
    adj = adj | adj.t()
    return adj.nonzero().t().contiguous(), cluster


# --------------------------------------------------------------------------------------------------
# Dense batches and folds
# --------------------------------------------------------------------------------------------------
def to_dense(graphs: GraphSet, max_nodes: int | None = None) -> DenseGraphs:
    """Pad every graph to ``max_nodes`` with PyG's ``ToDense`` and stack them (the DenseDataLoader layout)."""
    import warnings

    from torch_geometric.data import Data
    from torch_geometric.transforms import ToDense

    max_nodes = max_nodes or graphs.max_nodes
    if graphs.max_nodes > max_nodes:
        raise DataError(f"{graphs.name}: a graph has {graphs.max_nodes} nodes, more than max_nodes={max_nodes}")
    transform = ToDense(max_nodes)
    xs, adjs, masks = [], [], []
    for edges, x in zip(graphs.edges, graphs.x):
        with warnings.catch_warnings():  # ToDense builds a sparse tensor; PyG's own invariant warning
            warnings.simplefilter("ignore", UserWarning)
            dense = transform(Data(x=x, edge_index=edges, num_nodes=x.shape[0]))
        xs.append(dense.x)
        adjs.append((dense.adj > 0).float())
        masks.append(dense.mask)
    return DenseGraphs(torch.stack(xs), torch.stack(adjs), torch.stack(masks), graphs.y.clone())


def size_bucketed_batches(
    sizes: torch.Tensor, batch_size: int, generator: torch.Generator, pool: int = 8
) -> list[torch.Tensor]:
    """One epoch's batches (positions into ``sizes``): shuffle, cut into pools of ``pool * batch_size`` graphs,
    sort each pool by size, cut it into batches, shuffle the batches.

    Each batch is still a random draw of the training set (within a pool of similar-size graphs), but its
    largest graph is close to its smallest, so padding each batch to its own largest graph wastes little.
    ``pool=0`` gives plain random batches (the official loader's order).
    """
    order = torch.randperm(len(sizes), generator=generator)
    if pool <= 0:
        return list(order.split(batch_size))
    batches: list[torch.Tensor] = []
    for chunk in order.split(pool * batch_size):
        chunk = chunk[torch.argsort(sizes[chunk], stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


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
