"""TU reader, synthetic hierarchical set, dense batches and the 10-fold protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reprolab.core.errors import DataError
from reprolab.diffpool.data import (
    GraphSet,
    make_hierarchical_communities,
    read_tu_dataset,
    stratified_folds,
    to_dense,
    write_tu_dataset,
)

# Two graphs: a triangle (nodes 1-3, label -1) and an edge (nodes 4-5, label 1); no final newline anywhere.
HANDMADE = {
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4",
    "graph_indicator": "1\n1\n1\n2\n2",
    "graph_labels": "-1\n1",
    "node_labels": "0\n2\n0\n2\n2",
    "node_attributes": "0.5, 1.0\n1.5, 2.0\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0",
}


def _write(folder: Path, files: dict[str, str], name: str = "TOY") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part, text in files.items():
        (folder / f"{name}_{part}.txt").write_text(text, encoding="utf-8")
    return folder


def test_reader_parses_a_handmade_dataset(tmp_path):
    graphs = read_tu_dataset(_write(tmp_path, HANDMADE))
    assert graphs.name == "TOY" and len(graphs) == 2
    assert graphs.num_nodes() == [3, 2]
    assert graphs.class_names == ["-1", "1"] and graphs.y.tolist() == [0, 1]
    assert graphs.edges[0].shape[1] == 6 and graphs.edges[1].tolist() == [[0, 1], [1, 0]]
    # attributes then one-hot node labels (labels 0 and 2 -> two codes)
    assert graphs.x[0].tolist()[1] == [1.5, 2.0, 0.0, 1.0]
    assert graphs.x[1].tolist()[0] == [3.5, 4.0, 0.0, 1.0]


def test_reader_feature_choices_and_optional_files(tmp_path):
    folder = _write(tmp_path, {k: v for k, v in HANDMADE.items() if k in ("A", "graph_indicator", "graph_labels")})
    assert read_tu_dataset(folder).x[0].tolist() == [[1.0], [1.0], [1.0]]  # no labels/attributes: constant
    degree = read_tu_dataset(folder, features="degree")
    assert degree.x[0].argmax(dim=1).tolist() == [2, 2, 2] and degree.x[1].argmax(dim=1).tolist() == [1, 1]
    with pytest.raises(DataError, match="TOY_node_attributes.txt"):
        read_tu_dataset(folder, features="attributes")


def test_reader_round_trips_written_graphs(tmp_path):
    graphs = make_hierarchical_communities(9, seed=3)
    write_tu_dataset(graphs, tmp_path, "SYN")
    back = read_tu_dataset(tmp_path, "SYN", features="attributes")
    assert len(back) == len(graphs) and torch.equal(back.y, graphs.y)
    for g in range(len(graphs)):
        assert torch.allclose(back.x[g], graphs.x[g])
        assert set(map(tuple, back.edges[g].t().tolist())) == set(map(tuple, graphs.edges[g].t().tolist()))


@pytest.mark.parametrize(
    ("part", "text", "message"),
    [
        ("A", "1, 2\n2, x\n", r"TOY_A.txt:2: expected integers"),
        ("A", "1, 2\n2, 9\n", r"TOY_A.txt:2: node id 9 outside 1..5"),
        ("A", "1, 2\n3, 4\n", r"TOY_A.txt:2: edge \(3, 4\) joins graph 1 and graph 2"),
        ("A", "1, 2, 3\n", r"TOY_A.txt:1: expected 2 value"),
        ("graph_indicator", "1\n1\n1\n3\n3", r"TOY_graph_indicator.txt:4: graph ids must be consecutive"),
        ("graph_indicator", "1\n2\n1\n2\n2", r"TOY_graph_indicator.txt:3: nodes must be grouped"),
        ("graph_labels", "1\n", r"TOY_graph_labels.txt: 1 graph labels, but"),
        ("node_attributes", "1.0, 2.0\n1.0\n1, 1\n1, 1\n1, 1", r"TOY_node_attributes.txt:2: expected 2 attributes"),
        ("node_attributes", "1, 1\n1, 1\n", r"TOY_node_attributes.txt: 2 rows, but .* 5 nodes"),
        ("node_labels", "0\n1\nzero\n1\n1", r"TOY_node_labels.txt:3: expected integers"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, part, text, message):
    with pytest.raises(DataError, match=message):
        read_tu_dataset(_write(tmp_path, {**HANDMADE, part: text}))


def test_one_class_set_is_refused_naming_the_labels_file(tmp_path):
    with pytest.raises(DataError, match=r"TOY_graph_labels.txt: every graph has the same label \(1\)"):
        read_tu_dataset(_write(tmp_path, {**HANDMADE, "graph_labels": "1\n1"}))


def test_tu_folder_without_a_dataset_name_is_refused():
    from reprolab.core.errors import ConfigError
    from reprolab.diffpool.experiment import DiffPoolConfig

    with pytest.raises(ConfigError, match="tu_folder: /x/TOY is set but dataset is 'synthetic'"):
        DiffPoolConfig(tu_folder="/x/TOY").validate()


def test_missing_required_file_is_named(tmp_path):
    folder = _write(tmp_path, {k: v for k, v in HANDMADE.items() if k != "graph_labels"})
    with pytest.raises(DataError, match="TOY_graph_labels.txt: required TU file missing"):
        read_tu_dataset(folder, "TOY")


def _adjacency(edges: torch.Tensor, n: int) -> torch.Tensor:
    adj = torch.zeros(n, n)
    adj[edges[0], edges[1]] = 1
    return adj


def test_synthetic_label_is_the_number_of_ring_communities():
    graphs = make_hierarchical_communities(30, seed=1)
    assert torch.bincount(graphs.y).tolist() == [10, 10, 10]
    for edges, x, clusters, label in zip(graphs.edges, graphs.x, graphs.clusters, graphs.y.tolist()):
        adj = _adjacency(edges, x.shape[0])
        rings = 0
        for c in range(int(clusters.max()) + 1):
            members = clusters == c
            inner = adj[members][:, members]
            size = int(members.sum())
            assert 4 <= size <= 6
            is_ring = bool((inner.sum(dim=1) == 2).all()) and size > 3
            assert is_ring or bool((inner.sum(dim=1) == size - 1).all())  # otherwise a clique
            rings += is_ring
        assert rings == label + 1
        assert 3 <= int(clusters.max()) + 1 <= 10


def test_synthetic_graphs_are_symmetric_connected_trees_of_communities():
    graphs = make_hierarchical_communities(12, seed=2)
    for edges, x, clusters in zip(graphs.edges, graphs.x, graphs.clusters):
        n = x.shape[0]
        adj = _adjacency(edges, n)
        assert torch.equal(adj, adj.t()) and adj.diagonal().sum() == 0
        assert torch.equal(x.argmax(dim=1), adj.sum(dim=1).long().clamp(max=10))  # one-hot degree
        between = adj * (clusters[:, None] != clusters[None, :])
        assert int(between.sum()) // 2 == int(clusters.max())  # one bridge per tree edge
        reach = torch.eye(n)
        for _ in range(n):
            reach = ((reach + reach @ adj) > 0).float()
        assert reach.all(), "graph must be connected"
    with pytest.raises(ValueError, match="rings need"):
        make_hierarchical_communities(3, community_size=(2, 4))


def test_synthetic_set_is_reproducible_from_its_seed():
    a, b = make_hierarchical_communities(6, seed=5), make_hierarchical_communities(6, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.edges, b.edges)) and torch.equal(a.y, b.y)


def test_to_dense_pads_with_masks():
    graphs = GraphSet("t", [torch.tensor([[0, 1], [1, 0]]), torch.zeros(2, 0, dtype=torch.long)],
                      [torch.ones(2, 1), torch.ones(3, 1)], torch.tensor([0, 1]), ["a", "b"])
    dense = to_dense(graphs, max_nodes=4)
    assert dense.x.shape == (2, 4, 1) and dense.adj.shape == (2, 4, 4)
    assert dense.mask.sum(dim=1).tolist() == [2, 3]
    assert dense.adj[0, :2, :2].tolist() == [[0, 1], [1, 0]] and dense.adj[1].sum() == 0
    with pytest.raises(DataError, match="max_nodes=2"):
        to_dense(graphs, max_nodes=2)


def test_stratified_folds_partition_and_balance():
    y = torch.tensor([0] * 20 + [1] * 10)
    folds = stratified_folds(y, 10, seed=0)
    joined = torch.cat(folds).sort().values
    assert torch.equal(joined, torch.arange(30))
    assert all(len(f) == 3 and int((y[f] == 0).sum()) == 2 for f in folds)
    assert all(torch.equal(a, b) for a, b in zip(folds, stratified_folds(y, 10, seed=0)))
    with pytest.raises(DataError, match="folds"):
        stratified_folds(y, 1, seed=0)


@pytest.mark.realdata
def test_enzymes_and_mutag_read_with_the_documented_counts(real_data):
    enzymes = read_tu_dataset(real_data("TUDataset/ENZYMES"))
    assert len(enzymes) == 600 and sum(enzymes.num_nodes()) == 19580 and enzymes.num_classes == 6
    assert enzymes.num_features == 18 + 3 and enzymes.max_nodes == 126
    mutag = read_tu_dataset(real_data("TUDataset/MUTAG"))
    assert len(mutag) == 188 and sum(mutag.num_nodes()) == 3371 and mutag.class_names == ["-1", "1"]


# GIN/DGCNN text format: a triangle (label 0, tags 1 1 2) and a 2-node edge (label 1); folds {0}, {1}.
GIN_TEXT = "2\n3 0\n1 2 1 2\n1 2 0 2\n2 2 0 1\n2 1\n5 1 1\n5 1 0\n"


def _gin_zip(path: Path, text: str = GIN_TEXT, folds: bool = True) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("TOY/TOY.txt", text)
        archive.writestr("__MACOSX/TOY/._TOY.txt", "junk")
        if folds:
            for k in range(1, 11):
                archive.writestr(f"TOY/10fold_idx/test_idx-{k}.txt", "0\n" if k == 1 else ("1\n" if k == 2 else ""))
    return path


def test_gin_reader_reads_a_zip_in_place_with_its_folds(tmp_path):
    from reprolab.diffpool.data import find_dataset, read_gin_dataset

    (tmp_path / "TUDataset_gin_format").mkdir()
    path = _gin_zip(tmp_path / "TUDataset_gin_format" / "TOY.zip")
    graphs = read_gin_dataset(path, "TOY")
    assert graphs.num_nodes() == [3, 2] and graphs.y.tolist() == [0, 1]
    assert graphs.edges[0].shape[1] == 6 and graphs.edges[1].tolist() == [[0, 1], [1, 0]]
    assert graphs.num_features == 3  # one-hot tags 1, 2, 5
    assert [f.tolist() for f in graphs.folds[:3]] == [[0], [1], []]
    assert find_dataset(tmp_path, "toy") == ("gin", path)
    assert read_gin_dataset(path, "TOY", features="degree").num_features == 11


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2\n3 0\n1 2 1 2\n1 2 0 2\n", "runs past the end"),
        ("1\n2 0\n1 2 1\n1 1 0\n", ":3: expected 'tag degree neighbours"),
        ("1\n2 0\n1 1 7\n1 1 0\n", "outside 0..1"),
        ("x\n", ":1: expected the number of graphs"),
    ],
)
def test_gin_reader_names_the_member_and_line_of_bad_input(tmp_path, text, message):
    from reprolab.diffpool.data import read_gin_dataset

    with pytest.raises(DataError, match=message):
        read_gin_dataset(_gin_zip(tmp_path / "TOY.zip", text, folds=False), "TOY")


def test_batches_pad_to_their_own_largest_graph_and_buckets_group_sizes():
    from reprolab.diffpool.data import size_bucketed_batches

    graphs = make_hierarchical_communities(60, seed=0)
    sizes = graphs.sizes()
    small = torch.argsort(sizes)[:4]
    batch = graphs.batch(small)
    assert batch.adj.shape[1] == int(sizes[small].max()) < graphs.max_nodes
    full = to_dense(graphs).subset(small)
    n = batch.adj.shape[1]
    assert torch.equal(batch.adj, full.adj[:, :n, :n]) and torch.equal(batch.mask, full.mask[:, :n].bool())
    epoch = size_bucketed_batches(sizes, 5, torch.Generator().manual_seed(0), pool=4)
    assert sorted(torch.cat(epoch).tolist()) == list(range(60))
    spread = sum(int(sizes[b].max() - sizes[b].min()) for b in epoch)
    plain = size_bucketed_batches(sizes, 5, torch.Generator().manual_seed(0), pool=0)
    assert spread < sum(int(sizes[b].max() - sizes[b].min()) for b in plain)


def test_protein_sets_read_by_name_with_the_documented_counts(real_data):
    from reprolab.diffpool.data import find_dataset, read_gin_dataset

    home = real_data("TUDataset_gin_format/DD.zip").parents[1]
    kind, path = find_dataset(home, "D&D")
    assert kind == "gin"
    dd = read_gin_dataset(path, "DD")
    assert (len(dd), sum(dd.num_nodes()), dd.num_features) == (1178, 334925, 82)
    assert len(dd.folds) == 10 and sum(len(f) for f in dd.folds) == 1170  # 8 graphs are never in a test fold
    kind, path = find_dataset(home, "proteins")
    proteins = read_tu_dataset(path, "PROTEINS")
    assert (kind, len(proteins), proteins.max_nodes) == ("tu", 1113, 620)
