"""Data for LDS: scikit-learn tables without a graph, Planetoid citation graphs, kNN graphs, edge removal.

Splits follow the paper (Franceschi et al., ICML 2019, Sec. 5 and App. B) and its official code:

* Wine and Breast Cancer: 10 training, 10 validation, 10 early-stopping nodes (stratified), the rest test,
  features standardised; Digits: 50 / 50 / 50, raw pixel features.
* Cora / Citeseer: the standard Planetoid split (140 / 500 / 1000 for Cora); the 500 validation nodes
  are halved at random into the validation set that drives the hypergradient and the early-stopping set,
  and features are row-normalised (Kipf & Welling 2017).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from reprolab.core.errors import DataError
from reprolab.core.readers import check_finite, check_index_range

__all__ = [
    "PLANETOID_SUFFIXES",
    "UCI_SPLITS",
    "GraphData",
    "knn_graph",
    "load_uci",
    "read_planetoid",
    "remove_edges",
    "split_validation",
]

# name -> (n_train, n_val, n_es, standardise features)  [official lds.py main()]
UCI_SPLITS: dict[str, tuple[int, int, int, bool]] = {
    "wine": (10, 10, 10, True),
    "cancer": (10, 10, 10, True),
    "digits": (50, 50, 50, False),
}

PLANETOID_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


@dataclass(frozen=True)
class GraphData:
    """Node features, labels, the four node masks and, when there is one, the given (dense, 0/1) graph."""

    name: str
    features: torch.Tensor  # (n, d) float
    labels: torch.Tensor  # (n,) long
    train_mask: torch.Tensor  # (n,) bool: trains the GCN weights (inner problem)
    val_mask: torch.Tensor  # (n,) bool: validation loss of the outer problem
    es_mask: torch.Tensor  # (n,) bool: early stopping / model selection
    test_mask: torch.Tensor  # (n,) bool
    adjacency: torch.Tensor | None = None  # (n, n) symmetric 0/1, zero diagonal

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max().item()) + 1

    def with_adjacency(self, adjacency: torch.Tensor | None) -> GraphData:
        return replace(self, adjacency=adjacency)

    def to(self, device: torch.device | str) -> GraphData:
        adj = None if self.adjacency is None else self.adjacency.to(device)
        return GraphData(
            self.name, self.features.to(device), self.labels.to(device), self.train_mask.to(device),
            self.val_mask.to(device), self.es_mask.to(device), self.test_mask.to(device), adj,
        )


# ----------------------------------------------------------------------------------------------- UCI
def _load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loaders = {"wine": datasets.load_wine, "cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}
    bunch = loaders[name]()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _stratified_take(indices: np.ndarray, labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    taken, rest = train_test_split(indices, train_size=size, random_state=seed, stratify=labels[indices])
    return np.sort(taken), np.sort(rest)


def load_uci(name: str, seed: int) -> GraphData:
    """A scikit-learn table as graph-free node classification with the paper's split sizes (App. B)."""
    if name not in UCI_SPLITS:
        raise DataError(f"unknown table {name!r}; valid: {', '.join(UCI_SPLITS)}")
    n_train, n_val, n_es, standardise = UCI_SPLITS[name]
    x, y = _load_sklearn(name)
    if standardise:
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    everything = np.arange(len(y))
    labelled, test = _stratified_take(everything, y, n_train + n_val + n_es, seed)
    es, train_val = _stratified_take(labelled, y, n_es, seed)
    val, train = _stratified_take(train_val, y, n_val, seed)
    masks = [_mask(len(y), idx) for idx in (train, val, es, test)]
    return GraphData(name, torch.tensor(x, dtype=torch.float32), torch.tensor(y), *masks)


def _mask(n: int, indices: np.ndarray) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.as_tensor(indices, dtype=torch.long)] = True
    return mask


# ----------------------------------------------------------------------------------------- Planetoid
class _PlanetoidUnpickler(pickle.Unpickler):
    """Unpickles only the numpy / scipy / collections classes the Planetoid files hold (no code execution)."""

    _ALLOWED_PREFIXES = ("numpy", "scipy.sparse", "collections", "copy_reg", "copyreg", "__builtin__", "builtins")
    _ALLOWED_BUILTINS = {"object", "list", "dict", "set", "tuple", "int", "float", "long", "str", "bytes", "bytearray"}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("_codecs", "encode"):  # how Python 3 protocol-2 pickles store bytes
            return super().find_class(module, name)
        if not module.startswith(self._ALLOWED_PREFIXES):
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module in ("__builtin__", "builtins") and name not in self._ALLOWED_BUILTINS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "__builtin__":
            module = "builtins"
        if module.startswith("scipy.sparse.") and not module.startswith("scipy.sparse._"):
            module = "scipy.sparse"  # old private paths such as scipy.sparse.csr are deprecated aliases
        return super().find_class(module, name)


def _unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return _PlanetoidUnpickler(io.BytesIO(handle.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise DataError(f"{path}: not a readable Planetoid pickle (truncated or wrong file?): {err}") from err


def _read_test_index(path: Path) -> np.ndarray:
    values = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit():
                raise DataError(f"{path}:{number}: expected one non-negative node index per line, got {text[:40]!r}")
            values.append(min(int(text), 2**62))  # a larger value fails the range check with its line
    if not values:
        raise DataError(f"{path}:1: expected node indices, the file is empty")
    return np.asarray(values, dtype=np.int64)


def _check_one_hot(labels: np.ndarray, path: Path) -> None:
    """Every label row of a Planetoid file holds exactly one 1 (the files' one-hot class encoding)."""
    bad = np.flatnonzero((labels.sum(1) != 1) | ((labels != 0) & (labels != 1)).any(1))
    if len(bad):
        raise DataError(f"{path}: label row {int(bad[0])} is not one-hot ({len(bad)} such row(s))")


def _as_dense(value: object, path: Path, rows_expected: int | None = None) -> np.ndarray:
    if hasattr(value, "toarray"):
        array = np.asarray(value.toarray(), dtype=np.float64)  # type: ignore[attr-defined]
    elif isinstance(value, np.ndarray):
        array = value.astype(np.float64)
    else:
        raise DataError(f"{path}: expected a matrix, got {type(value).__name__}")
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 2-d matrix, got shape {array.shape}")
    if rows_expected is not None and array.shape[0] != rows_expected:
        raise DataError(f"{path}: expected {rows_expected} rows, got {array.shape[0]}")
    return array


def read_planetoid(folder: str | Path, name: str = "cora", *, seed: int = 0) -> GraphData:
    """Read ``ind.<name>.*`` (Yang et al. 2016) with the standard split, as in Kipf & Welling's loader.

    Labelled training nodes are the first ``len(y)`` nodes, validation the next 500, test the nodes in
    ``test.index``. The 500 validation nodes are split in half by ``seed`` into validation (outer objective)
    and early-stopping sets, as in the official LDS code. Features are row-normalised.
    """
    folder = Path(folder)
    paths = {suffix: folder / f"ind.{name}.{suffix}" for suffix in PLANETOID_SUFFIXES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: Planetoid file missing (need ind.{name}.{{{','.join(PLANETOID_SUFFIXES)}}})")
    x = _as_dense(_unpickle(paths["x"]), paths["x"])
    y = _as_dense(_unpickle(paths["y"]), paths["y"], x.shape[0])
    allx = _as_dense(_unpickle(paths["allx"]), paths["allx"])
    ally = _as_dense(_unpickle(paths["ally"]), paths["ally"], allx.shape[0])
    tx = _as_dense(_unpickle(paths["tx"]), paths["tx"])
    ty = _as_dense(_unpickle(paths["ty"]), paths["ty"], tx.shape[0])
    graph = _unpickle(paths["graph"])
    if not isinstance(graph, dict):
        raise DataError(f"{paths['graph']}: expected an adjacency dict, got {type(graph).__name__}")
    for suffix, matrix in (("x", x), ("y", y), ("allx", allx), ("ally", ally), ("tx", tx), ("ty", ty)):
        check_finite(matrix, paths[suffix], "entries")
    for suffix, matrix in (("y", y), ("ally", ally), ("ty", ty)):
        _check_one_hot(matrix, paths[suffix])  # argmax would silently read an all-zero row as class 0
    test_index = _read_test_index(paths["test.index"])
    # test nodes follow the allx nodes and are nodes of the graph: anything else is a corrupt index, and a huge
    # one would make the padding below allocate a matrix of that many rows
    check_index_range(test_index, allx.shape[0], len(graph), paths["test.index"], "test node index")
    if len(np.unique(test_index)) != len(test_index):
        raise DataError(f"{paths['test.index']}: a test node index occurs twice")
    if len(test_index) != tx.shape[0]:
        raise DataError(
            f"{paths['test.index']}: {len(test_index)} indices but {paths['tx'].name} has {tx.shape[0]} rows"
        )
    for path, mat in ((paths["tx"], tx), (paths["allx"], allx)):
        if mat.shape[1] != x.shape[1]:
            raise DataError(f"{path}: {mat.shape[1]} feature columns, {paths['x'].name} has {x.shape[1]}")
    tx, ty = _pad_isolated_test_nodes(tx, ty, test_index)
    features = np.vstack([allx, tx])
    labels_onehot = np.vstack([ally, ty])
    ordered = np.sort(test_index)
    features[test_index] = features[ordered]
    labels_onehot[test_index] = labels_onehot[ordered]
    n = features.shape[0]
    adjacency = _adjacency_from_dict(graph, n, paths["graph"])
    labels = labels_onehot.argmax(1)
    rowsum = features.sum(1, keepdims=True)
    features = features / np.where(rowsum > 0, rowsum, 1.0)
    train = np.arange(y.shape[0])
    val_all = np.arange(y.shape[0], y.shape[0] + 500)
    val, es = split_validation(val_all, seed)
    masks = [_mask(n, idx) for idx in (train, val, es, test_index)]
    return GraphData(
        name, torch.tensor(features, dtype=torch.float32), torch.tensor(labels, dtype=torch.long), *masks,
        adjacency=torch.tensor(adjacency, dtype=torch.float32),
    )


def split_validation(indices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Halve validation nodes at random into (validation, early stopping) [official reorganize_data_for_es]."""
    keep = np.random.default_rng(seed).random(len(indices)) < 0.5
    return indices[~keep], indices[keep]


def _pad_isolated_test_nodes(tx: np.ndarray, ty: np.ndarray, test_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Citeseer has test-range nodes without features: give them zero rows (Kipf & Welling's fix)."""
    full = np.arange(test_index.min(), test_index.max() + 1)
    if len(full) == len(test_index):
        return tx, ty
    tx_ext = np.zeros((len(full), tx.shape[1]))
    ty_ext = np.zeros((len(full), ty.shape[1]))
    tx_ext[np.sort(test_index) - full[0]] = tx
    ty_ext[np.sort(test_index) - full[0]] = ty
    return tx_ext, ty_ext


def _adjacency_from_dict(graph: dict, n: int, path: Path) -> np.ndarray:
    adjacency = np.zeros((n, n), dtype=np.float32)
    for node, neighbours in graph.items():
        if not isinstance(node, (int, np.integer)) or not 0 <= int(node) < n:
            raise DataError(f"{path}: node key {node!r} is not an index in [0, {n})")
        for other in neighbours:
            if not isinstance(other, (int, np.integer)) or not 0 <= int(other) < n:
                raise DataError(f"{path}: neighbour {other!r} of node {node} is not an index in [0, {n})")
            adjacency[int(node), int(other)] = 1.0
    adjacency = np.maximum(adjacency, adjacency.T)
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


# ------------------------------------------------------------------------------------------ graphs
def knn_graph(features: torch.Tensor, k: int, metric: str = "cosine") -> torch.Tensor:
    """Symmetric 0/1 kNN graph (kNN-LDS initialisation, Sec. 4): i~j if either is among the other's k nearest.

    ``metric`` is ``cosine`` or ``minkowski`` (Euclidean), as in the paper's grid.
    """
    if metric not in ("cosine", "minkowski", "euclidean"):
        raise DataError(f"knn metric must be cosine or minkowski, got {metric!r}")
    n = features.shape[0]
    if not 0 < k < n:
        raise DataError(f"knn k must be in [1, {n - 1}], got {k}")
    x = features.double()
    if metric == "cosine":
        unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        distance = 1.0 - unit @ unit.T
    else:
        distance = torch.cdist(x, x)
    distance.fill_diagonal_(float("inf"))
    neighbours = distance.topk(k, dim=1, largest=False).indices
    adjacency = torch.zeros(n, n, dtype=torch.float32)
    adjacency.scatter_(1, neighbours, 1.0)
    return torch.maximum(adjacency, adjacency.T)


def remove_edges(adjacency: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Delete each undirected edge independently with probability ``fraction`` (the paper's Sec. 5.1 setup)."""
    if not 0.0 <= fraction <= 1.0:
        raise DataError(f"edge removal fraction must be in [0, 1], got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    upper = torch.triu(adjacency, diagonal=1)
    keep = (torch.rand(adjacency.shape, generator=generator) >= fraction).float()
    kept = upper * keep
    return kept + kept.T
