"""Progress lines: plain lines with an ETA when stderr is not a terminal, nothing when switched off."""

from __future__ import annotations

from reprolab.core import progress as progress_module
from reprolab.core.progress import announce, progress, progress_mode


def test_modes_follow_the_environment(monkeypatch):
    for value, mode in (("0", "off"), ("plain", "plain"), ("1", "bar"), ("bar", "bar")):
        monkeypatch.setenv("REPROLAB_PROGRESS", value)
        assert progress_mode() == mode
    monkeypatch.delenv("REPROLAB_PROGRESS")
    assert progress_mode() == "plain"  # pytest's stderr is not a terminal: plain lines, never silence


def test_plain_mode_prints_rate_eta_and_finished_units(monkeypatch, capsys):
    monkeypatch.setenv("REPROLAB_PROGRESS", "plain")
    monkeypatch.setenv("REPROLAB_PROGRESS_EVERY", "0")
    monkeypatch.setattr(progress_module, "_MIN_LOOP_S", 0.0)
    assert list(progress(range(4), desc="demo: train")) == [0, 1, 2, 3]
    announce("demo: unit a done")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("demo: train: 1/4 (25%)") and "ETA" in lines[0]
    assert lines[-2].startswith("demo: train: finished 4") and lines[-1] == "demo: unit a done"


def test_off_mode_is_silent(monkeypatch, capsys):
    monkeypatch.setenv("REPROLAB_PROGRESS", "0")
    assert list(progress(range(3))) == [0, 1, 2]
    announce("nothing")
    assert capsys.readouterr().err == ""
