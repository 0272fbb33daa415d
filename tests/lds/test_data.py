"""Data: paper splits, kNN graphs, edge removal, and the Planetoid reader on good and bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reprolab.core.errors import DataError
from reprolab.lds.data import knn_graph, load_uci, read_planetoid, remove_edges


@pytest.mark.parametrize(("name", "size", "n"), [("wine", 10, 178), ("cancer", 10, 569), ("digits", 50, 1797)])
def test_uci_splits_have_paper_sizes_and_are_disjoint(name, size, n):
    data = load_uci(name, seed=3)
    masks = [data.train_mask, data.val_mask, data.es_mask, data.test_mask]
    assert [int(m.sum()) for m in masks] == [size, size, size, n - 3 * size]
    assert int(sum(m.long() for m in masks).max()) == 1
    assert data.adjacency is None and data.features.shape[0] == n
    assert len(data.labels[data.train_mask].unique()) == data.num_classes  # stratified


def test_uci_split_depends_on_seed_only():
    a, b, c = load_uci("wine", 1), load_uci("wine", 1), load_uci("wine", 2)
    assert torch.equal(a.train_mask, b.train_mask) and not torch.equal(a.train_mask, c.train_mask)


def test_knn_graph_hand_case():
    points = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    graph = knn_graph(points, 1, "minkowski")
    expected = torch.tensor([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.float32)
    assert torch.equal(graph, expected)


def test_knn_graph_symmetric_with_k_neighbours():
    data = load_uci("wine", 0)
    graph = knn_graph(data.features, 10, "cosine")
    assert torch.equal(graph, graph.T) and torch.all(graph.diagonal() == 0)
    assert graph.sum(1).min() >= 10
    with pytest.raises(DataError, match="k must be"):
        knn_graph(data.features, 0)


def test_remove_edges_fractions():
    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(60, 60, generator=gen) < 0.2).float().triu(1)
    a = a + a.T
    assert torch.equal(remove_edges(a, 0.0, 1), a)
    assert remove_edges(a, 1.0, 1).sum() == 0
    half = remove_edges(a, 0.5, 1)
    assert torch.equal(half, half.T) and torch.all(half <= a)
    assert 0.35 < float(half.sum() / a.sum()) < 0.65
    assert torch.equal(half, remove_edges(a, 0.5, 1))
    with pytest.raises(DataError):
        remove_edges(a, 1.5, 1)


# ------------------------------------------------------------------------------- Planetoid files
def _write_planetoid(folder: Path, name: str = "toy") -> None:
    """A 20-node Planetoid set: 4 labelled training nodes, nodes 4..15 'validation', 16..19 test."""
    rng = np.random.default_rng(0)
    n, d, c = 520, 5, 3  # the standard split needs 500 validation nodes after the training ones
    features = rng.random((n, d))
    labels = np.eye(c)[rng.integers(0, c, n)]
    test = np.arange(n - 10, n)[::-1]
    objects = {
        "x": sp.csr_matrix(features[:4]), "y": labels[:4], "allx": sp.csr_matrix(features[: n - 10]),
        "ally": labels[: n - 10], "tx": sp.csr_matrix(features[np.sort(test)]), "ty": labels[np.sort(test)],
        "graph": {i: [(i + 1) % n, (i + 7) % n] for i in range(n)},
    }
    for suffix, value in objects.items():
        with open(folder / f"ind.{name}.{suffix}", "wb") as handle:
            pickle.dump(value, handle, protocol=2)
    (folder / f"ind.{name}.test.index").write_text("\n".join(str(i) for i in test) + "\n")


def test_planetoid_reader_on_generated_files(tmp_path):
    _write_planetoid(tmp_path)
    data = read_planetoid(tmp_path, "toy", seed=0)
    assert data.num_nodes == 520 and data.features.shape == (520, 5)
    assert int(data.train_mask.sum()) == 4 and int(data.test_mask.sum()) == 10
    assert int(data.val_mask.sum()) + int(data.es_mask.sum()) == 500
    adj = data.adjacency
    assert adj is not None and torch.equal(adj, adj.T) and adj[0, 1] == 1 and adj[0, 7] == 1
    assert torch.allclose(data.features.sum(1), torch.ones(520))


def test_planetoid_reader_rejects_truncated_pickle(tmp_path):
    _write_planetoid(tmp_path)
    path = tmp_path / "ind.toy.allx"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match=r"ind\.toy\.allx.*truncated"):
        read_planetoid(tmp_path, "toy")


def test_planetoid_reader_rejects_bad_index_line(tmp_path):
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.test.index").write_text("519\n518\nabc\n")
    with pytest.raises(DataError, match=r"ind\.toy\.test\.index:3:"):
        read_planetoid(tmp_path, "toy")


def test_planetoid_reader_rejects_wrong_file_and_missing_file(tmp_path):
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.ty").write_bytes((tmp_path / "ind.toy.y").read_bytes())  # 4 rows, 10 expected
    with pytest.raises(DataError, match=r"ind\.toy\.ty: expected 10 rows"):
        read_planetoid(tmp_path, "toy")
    (tmp_path / "ind.toy.graph").unlink()
    with pytest.raises(DataError, match=r"ind\.toy\.graph: Planetoid file missing"):
        read_planetoid(tmp_path, "toy")


def test_planetoid_reader_refuses_code_in_pickles(tmp_path):
    _write_planetoid(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    with open(tmp_path / "ind.toy.graph", "wb") as handle:
        pickle.dump(Evil(), handle, protocol=2)
    with pytest.raises(DataError, match="refusing"):
        read_planetoid(tmp_path, "toy")


@pytest.mark.realdata
def test_real_cora_counts(real_data):
    data = read_planetoid(real_data("planetoid"), "cora")
    assert data.num_nodes == 2708 and data.features.shape[1] == 1433 and data.num_classes == 7
    assert data.adjacency is not None and int(data.adjacency.sum()) // 2 == 5278
    assert [int(m.sum()) for m in (data.train_mask, data.test_mask)] == [140, 1000]
    assert int(data.val_mask.sum() + data.es_mask.sum()) == 500


@pytest.mark.realdata
def test_real_citeseer_loads_by_name(real_data):
    data = read_planetoid(real_data("planetoid"), "citeseer")
    assert data.num_nodes == 3327 and data.features.shape[1] == 3703 and data.num_classes == 6
    assert [int(m.sum()) for m in (data.train_mask, data.test_mask)] == [120, 1000]
