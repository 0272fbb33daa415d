from __future__ import annotations

import json
import os

import pytest
import torch

from reprolab.core.checkpoint import config_fingerprint, load_checkpoint, save_checkpoint
from reprolab.core.errors import CheckpointError
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
