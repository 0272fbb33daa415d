from __future__ import annotations

import json
import os

import pytest
import torch

from reprolab.core.checkpoint import config_fingerprint, load_checkpoint, save_checkpoint
from reprolab.core.errors import CheckpointError, DataError
from reprolab.core.io import atomic_write, atomic_write_json
from reprolab.core.seeding import derive_seed, get_rng_state, seed_everything, set_rng_state


def test_checkpoint_round_trip_with_tensors_and_nested_state(tmp_path):
    state = {"step": 3, "weights": {"w": torch.arange(4.0)}, "done": {"a": {"x": 1.5}}, "names": ["a", "b"]}
    path = save_checkpoint(tmp_path / "c.pt", state, fingerprint="abc")
    loaded = load_checkpoint(path, fingerprint="abc")
    assert loaded["step"] == 3 and torch.equal(loaded["weights"]["w"], torch.arange(4.0))
    assert loaded["done"] == {"a": {"x": 1.5}}


def test_checkpoint_from_other_config_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"step": 1}, fingerprint="abc")
    with pytest.raises(CheckpointError, match="different configuration"):
        load_checkpoint(path, fingerprint="xyz")


def test_truncated_checkpoint_is_refused_with_its_path(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.randn(100)}, fingerprint="abc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt: corrupt or unsafe checkpoint"):
        load_checkpoint(path, fingerprint="abc")


def test_foreign_pickle_is_refused(tmp_path):
    import datetime

    path = tmp_path / "evil.pt"  # an arbitrary (non-allow-listed) Python object inside
    torch.save({"format": "reprolab-checkpoint-v1", "fingerprint": "a", "state": datetime.date(2020, 1, 1)}, path)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(path)


def test_non_reprolab_file_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a reprolab checkpoint"):
        load_checkpoint(path)


def test_failed_atomic_write_keeps_previous_file(tmp_path):
    target = atomic_write_json(tmp_path / "results.json", {"ok": 1})

    def explode(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp files left behind


def test_fingerprint_is_stable_and_sensitive():
    a = config_fingerprint({"method": "m", "config": {"x": 1}, "seed": 0})
    assert a == config_fingerprint({"seed": 0, "config": {"x": 1}, "method": "m"})
    assert a != config_fingerprint({"method": "m", "config": {"x": 2}, "seed": 0})


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "unit", 1) == derive_seed(0, "unit", 1)
    assert derive_seed(0, "unit", 1) != derive_seed(0, "unit", 2) != derive_seed(1, "unit", 1)
    assert 0 <= derive_seed(123, "x") < 2**31


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    seed_everything(5)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": get_rng_state()}, fingerprint="f")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(path, fingerprint="f")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    os.remove(path)


def test_cached_artefacts_miss_on_corrupt_foreign_or_unfit_files(tmp_path):
    from reprolab.core.checkpoint import load_cached, save_cached

    first, second = tmp_path / "a", tmp_path / "b"
    notes: list[str] = []
    assert load_cached("m.pt", [first, second], "f1", note=notes.append) is None  # nothing there yet
    path = save_cached("m.pt", [first, second], {"w": torch.ones(2)}, "f1")
    assert path == first / "m.pt"
    state, found = load_cached("m.pt", [first, second], "f1")
    assert found == path and torch.equal(state["w"], torch.ones(2))
    assert load_cached("m.pt", [first], "other", note=notes.append) is None  # another configuration's file
    assert load_cached("m.pt", [first], "f1", note=notes.append, accept=lambda s: "v" in s) is None
    save_cached("m.pt", [second], {"w": torch.zeros(2)}, "f1")
    path.write_bytes(b"not a checkpoint")  # corrupt first copy: the next folder's valid one is used
    state, found = load_cached("m.pt", [first, second], "f1", note=notes.append)
    assert found == second / "m.pt" and torch.equal(state["w"], torch.zeros(2))
    assert len(notes) == 3 and all(n.startswith("Ignored a cache file") for n in notes)


def test_read_state_dict_names_the_file_and_the_expected_content(tmp_path):
    from reprolab.core.checkpoint import read_state_dict

    torch.save({"w": torch.ones(1)}, tmp_path / "ok.pt")
    assert torch.equal(read_state_dict(tmp_path / "ok.pt")["w"], torch.ones(1))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk\.pt: not a readable VGG state dict"):
        read_state_dict(tmp_path / "junk.pt", what="VGG state dict")
    for name, content in (("text.pt", b"junk\n"), ("words.pt", b"not a checkpoint at all\n" * 3)):
        (tmp_path / name).write_bytes(content)  # the legacy reader raises KeyError and friends on these
        with pytest.raises(DataError, match="not a readable"):
            read_state_dict(tmp_path / name)
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list\.pt: expected a state dict"):
        read_state_dict(tmp_path / "list.pt", error=CheckpointError)


def test_require_cached_names_the_missing_backbone_in_one_line(tmp_path):
    """A saved model whose frozen backbone is no longer cached gets one line saying how to rebuild it."""
    import pytest

    from reprolab.core.checkpoint import require_cached
    from reprolab.core.errors import ReproError

    with pytest.raises(ReproError, match="mini CLIP minclip-x.pt is in none of .*rerun the run's command"):
        require_cached("minclip-x.pt", [tmp_path], "abc", "mini CLIP")
