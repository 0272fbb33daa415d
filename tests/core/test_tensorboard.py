"""TensorBoard logs of a run: every ctx.log scalar and the figures, under RUN/tensorboard."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from reprolab.cli import app

TINY = [f"--set={s}" for s in ("steps=15", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16")]


def test_run_writes_scalars_and_figures_for_tensorboard(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("REPROLAB_TENSORBOARD", raising=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "demi", *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert any(tag.endswith("/estimate") for tag in tags["scalars"]), tags["scalars"]
    assert "figures/mi_sweep" in tags["images"]
    quiet = CliRunner().invoke(app, ["run", "demi", *TINY, "--out", str(tmp_path / "quiet"), "--no-tensorboard"])
    assert quiet.exit_code == 0 and not (tmp_path / "quiet" / "tensorboard").exists()
