"""Settings that make a cocoop CLI run take seconds: a tiny mini CLIP, two colours x two shapes, one seed."""

from __future__ import annotations

import pytest

TINY = [
    "pretrain_steps=5",
    "pretrain_batch=16",
    "image_size=8",
    "width=32",
    "layers=1",
    "n_colours=2",
    "n_shapes=2",
    "seeds=[1]",
    "shots=2",
    "coop_epochs=2",
    "cocoop_epochs=1",
    "coop_batch_size=4",
    "cocoop_batch_size=4",
]


@pytest.fixture
def tiny_cli_args():
    """Return ``tiny_cli_args(out, *extra_sets)`` -> the ``reprolab run cocoop`` argument list."""

    def build(out, *extra: str) -> list[str]:
        args = ["run", "cocoop", "--out", str(out)]
        for item in (*TINY, *extra):
            args += ["--set", item]
        return args

    return build
