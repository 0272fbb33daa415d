"""Progress lines: plain lines with an ETA when stderr is not a terminal, nothing when switched off."""

from __future__ import annotations

from reprolab.core import progress as progress_module
from reprolab.core.progress import announce, progress, progress_mode, step_progress


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


def test_step_progress_counts_callback_steps_with_an_eta(monkeypatch, capsys):
    monkeypatch.setenv("REPROLAB_PROGRESS", "plain")
    monkeypatch.setenv("REPROLAB_PROGRESS_EVERY", "0")
    monkeypatch.setattr(progress_module, "_MIN_LOOP_S", 0.0)
    step = step_progress("demo: outer iterations (<= 3)", 3)
    for _ in range(3):
        step()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("demo: outer iterations (<= 3): 1/3 (33%)") and "ETA" in lines[0]
    assert lines[-1].startswith("demo: outer iterations (<= 3): finished 3")


def test_step_progress_may_stop_early_and_runs_without_a_total(monkeypatch, capsys):
    monkeypatch.setenv("REPROLAB_PROGRESS", "plain")
    monkeypatch.setenv("REPROLAB_PROGRESS_EVERY", "0")
    monkeypatch.setattr(progress_module, "_MIN_LOOP_S", 0.0)
    step_progress("demo: capped", 10)()  # an early-stopped loop: one step of ten, no error
    step = step_progress("demo: open")
    step()
    step()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("demo: capped: 1/10")
    assert lines[-1].startswith("demo: open: 2 done")
