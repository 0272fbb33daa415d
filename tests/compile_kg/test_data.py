"""Readers and the embedded family KG: layout, disjoint entities, clear errors naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.compile_kg.data import (
    FAMILY_RELATIONS,
    family_inductive_split,
    load_grail_split,
    write_grail_split,
)
from reprolab.core.errors import DataError


def test_family_split_has_disjoint_graphs_and_held_out_targets_not_in_support():
    split = family_inductive_split(train_families=5, ind_families=3, seed=2)
    assert split.num_relations == len(FAMILY_RELATIONS)
    support = split.ind_graph.known()
    assert not any(tuple(t) in support for t in split.ind_test.tolist())
    assert len(split.ind_test) > 0 and len(split.valid_targets) > 0
    # every relation follows from rules: each father_of has the matching son_of/daughter_of fact
    full = split.ind_all_true()
    father, son, daughter = (FAMILY_RELATIONS.index(n) for n in ("father_of", "son_of", "daughter_of"))
    for h, r, t in full:
        if r == father:
            assert (t, son, h) in full or (t, daughter, h) in full


def test_family_split_is_deterministic_in_its_seed():
    a = family_inductive_split(train_families=3, ind_families=2, seed=7)
    b = family_inductive_split(train_families=3, ind_families=2, seed=7)
    assert np.array_equal(a.ind_test, b.ind_test) and np.array_equal(a.train_graph.triples, b.train_graph.triples)


def test_grail_layout_round_trip(tmp_path):
    split = family_inductive_split(train_families=3, ind_families=2, seed=0)
    write_grail_split(split, tmp_path)
    read = load_grail_split(tmp_path, "family")
    assert read.summary()["ind_test_triples"] == len(split.ind_test)
    assert len(read.train_graph.triples) == len(split.train_graph.triples)
    assert read.ind_graph.num_relations == split.num_relations


def _write(root, name, files):
    for folder, text in files.items():
        path = root / (name if folder == "" else f"{name}_ind")
        path.mkdir(parents=True, exist_ok=True)
        for split_name in ("train", "valid", "test"):
            (path / f"{split_name}.txt").write_text(text.get(split_name, "a\tr\tb\n"), encoding="utf-8")


def test_wrong_column_count_names_file_and_line(tmp_path):
    _write(tmp_path, "kg", {"": {"train": "a\tr\tb\nc\tr\n"}, "ind": {}})
    with pytest.raises(DataError, match=r"kg/train\.txt:2: expected 3 tab-separated fields"):
        load_grail_split(tmp_path, "kg")


def test_unknown_relation_in_inductive_graph_names_file_and_line(tmp_path):
    _write(tmp_path, "kg", {"": {}, "ind": {"train": "x\tr\ty\nx\tnew_rel\tz\n"}})
    with pytest.raises(DataError, match=r"kg_ind/train\.txt:2: relation 'new_rel' does not occur"):
        load_grail_split(tmp_path, "kg")


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="NAME_vK_ind"):
        load_grail_split(tmp_path, "absent")


@pytest.mark.parametrize("name", ["WN18RR_v1", "fb237_v1", "nell_v1"])
def test_real_grail_splits_read_with_the_documented_counts(real_data, name):
    root = real_data("grail_inductive")
    split = load_grail_split(root, name)
    expected = {"WN18RR_v1": (5410, 1618, 188), "fb237_v1": (4245, 1993, 205), "nell_v1": (4687, 833, 100)}[name]
    assert (len(split.train_graph.triples), len(split.ind_graph.triples), len(split.ind_test)) == expected
