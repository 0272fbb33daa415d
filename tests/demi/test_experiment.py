from __future__ import annotations

import json

from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.config import resolve_config
from reprolab.core.registry import get_experiment


def test_quick_run_end_to_end_with_digits(tmp_path):
    args = [
        "run",
        "demi",
        "--out",
        str(tmp_path / "run"),
        "--set",
        "steps=20",
        "--set",
        "eval_batches=2",
        "--set",
        "true_mis=[2,10,20]",
        "--set",
        "hidden=16",
        "--set",
        "embed=8",
        "--set",
        "digits_steps=10",
        "--set",
        "batch_size=16",
        "--set",
        "exact_ks=[2,4]",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    ids = {c["id"] for c in results["claims"]}
    assert ids == {c.id for c in get_experiment("demi").claims}
    for name in ("infonce_at_20", "demi_k2_at_20", "demi_k4_at_20", "demi_exact_k4_at_20", "digits_probe_acc_demi"):
        assert name in results["metrics"]
    verdicts = {c["id"]: c for c in results["claims"]}
    capped = verdicts["infonce_below_log_n"]
    assert capped["kind"] == "structural" and capped["verdict"] == "pass"
    # the sub-view comparison is taken below the caps (true MI 2 <= 2 log 16), not where both saturate
    assert results["metrics"]["demi_exact_below_cap_true_mi"] == 2.0
    assert (tmp_path / "run" / "figures" / "digits_probe.png").exists()


def test_paper_preset_resolves_and_validates():
    experiment = get_experiment("demi")
    config = resolve_config(experiment.config_cls, experiment.presets, "paper")
    assert config.steps > 10_000 and config.dim % max(config.ks) == 0
