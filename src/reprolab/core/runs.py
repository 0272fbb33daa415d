"""Run folders and the run context handed to every experiment's ``run(config, ctx)``.

A run folder holds::

    config.yaml        method, preset, seed, device and the resolved config
    metrics.jsonl      one JSON object per logged step/epoch/unit
    results.json       the results contract (see :mod:`reprolab.core.results`), written atomically
    report.md          the human-readable report
    figures/*.png      figures
    checkpoints/       ``last.pt``, written atomically, for ``--resume``

:class:`RunContext` gives a method everything it needs without re-implementing it: metric logging,
checkpoints that also capture RNG state and the metrics-log position, figure paths, progress bars, the
data home, the device, and per-unit seeds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from reprolab.core.checkpoint import load_checkpoint, save_checkpoint
from reprolab.core.errors import CheckpointError
from reprolab.core.progress import progress, step_progress
from reprolab.core.seeding import derive_seed, get_rng_state, set_rng_state, torch_generator

__all__ = ["RunContext"]

T = TypeVar("T")

CHECKPOINT_NAME = "last.pt"


@dataclass
class RunContext:
    """What a running experiment can use. Created by :func:`reprolab.core.runner.run_experiment`."""

    out_dir: Path
    method: str
    preset: str
    seed: int
    device: torch.device
    data_home: Path
    fingerprint: str
    resume: bool = False
    tables: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    units: dict[str, dict[str, float | None]] = field(default_factory=dict)
    tensorboard: bool = False  # also write every ctx.log scalar and the figures as TensorBoard events
    elapsed_before_s: float = 0.0
    cpu_before_s: float = 0.0

    def __post_init__(self) -> None:
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()
        self.out_dir = Path(self.out_dir)
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path.touch(exist_ok=True)

    # -- paths --------------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.out_dir / "figures"

    @property
    def checkpoints_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def figure_path(self, name: str) -> Path:
        """Path for a figure ``name`` (``.png`` added when missing) inside ``figures/``."""
        return self.figures_dir / (name if name.endswith(".png") else f"{name}.png")

    # -- metrics ------------------------------------------------------------------------------
    def log(self, **values: Any) -> None:
        """Append one JSON object to ``metrics.jsonl`` (e.g. ``ctx.log(step=10, loss=0.3, unit="a")``)."""
        record = {key: _jsonable(value) for key, value in values.items()}
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self._tensorboard_scalars(record)

    # -- TensorBoard -----------------------------------------------------------------------------
    def _writer(self) -> Any:
        """The run's SummaryWriter (``tensorboard/`` in the run folder), created on first use; None when the
        ``tensorboard`` package is absent (noted once in the report)."""
        if getattr(self, "_summary_writer", None) is None and self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.note("TensorBoard logging was asked for but is not installed: pip install 'reprolab[watch]'")
                self.tensorboard = False
                return None
            self._summary_writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
            self._tensorboard_steps: dict[str, int] = {}
        return getattr(self, "_summary_writer", None)

    def _tensorboard_scalars(self, record: Mapping[str, Any]) -> None:
        writer = self._writer()
        if writer is None:
            return
        prefix = f"{record['unit']}/" if isinstance(record.get("unit"), str) else ""
        for key, value in record.items():
            if key in ("step", "epoch", "unit") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            tag = prefix + key
            step = record.get("step", record.get("epoch"))
            if not isinstance(step, int):
                step = self._tensorboard_steps.get(tag, 0)
            self._tensorboard_steps[tag] = step + 1
            writer.add_scalar(tag, value, global_step=step)

    def close_tensorboard(self) -> None:
        """Add the run's figures and close the writer (called by the runner when the run ends)."""
        writer = self._writer() if self.tensorboard else None
        if writer is None:
            return
        import matplotlib.image

        for figure in sorted(self.figures_dir.glob("*.png")):
            writer.add_image(f"figures/{figure.stem}", matplotlib.image.imread(figure)[..., :3], dataformats="HWC")
        writer.close()

    def _metrics_line_count(self) -> int:
        with open(self.metrics_path, encoding="utf-8") as handle:
            return sum(1 for _ in handle)

    def _truncate_metrics(self, lines: int) -> None:
        with open(self.metrics_path, encoding="utf-8") as handle:
            kept = [line for _, line in zip(range(lines), handle)]
        with open(self.metrics_path, "w", encoding="utf-8") as handle:
            handle.writelines(kept)

    # -- report extras -------------------------------------------------------------------------
    def add_table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A table for the report (stored in ``results.json`` so ``reprolab report`` can rebuild it)."""
        self.tables.append(
            {"title": title, "columns": list(columns), "rows": [[_jsonable(v) for v in row] for row in rows]}
        )

    def note(self, text: str) -> None:
        """A sentence for the report (e.g. which data was used, or why a claim could not be checked)."""
        self.notes.append(text)

    def save_model(
        self,
        name: str,
        model: torch.nn.Module,
        *,
        build: Any,
        kwargs: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        frozen: Sequence[str] = (),
    ) -> Path:
        """Keep a trained model: ``models/<name>.safetensors`` + ``models/<name>.json`` (``build(**kwargs)``
        rebuilds it; ``frozen`` prefixes are restored by ``build``, not saved). ``reprolab.load_run(dir).model(name)``
        loads it back."""
        from reprolab.core.results import save_model

        return save_model(self.out_dir, name, model, build=build, kwargs=kwargs, meta=meta, frozen=frozen)

    def record_unit(self, unit: str, metrics: Mapping[str, Any]) -> None:
        """Record the metrics of one unit inside this run (a fold, a repeat), stored in ``results.json``
        ``units``: a claim whose metrics are recorded here is decided over these units (x seeds) instead of
        over the run-level metrics, as the paper's protocol does (e.g. accuracy per cross-validation fold)."""
        clean = {}
        for name, value in metrics.items():
            value = _jsonable(value)
            clean[str(name)] = None if value is None else float(value)
        self.units[str(unit)] = clean

    # -- seeds and progress --------------------------------------------------------------------
    def seed_for(self, *keys: Any) -> int:
        """A seed for one independent unit of work (sweep point, fold, ...), stable across resumes."""
        return derive_seed(self.seed, *keys)

    def generator(self, *keys: Any, device: torch.device | str | None = None) -> torch.Generator:
        return torch_generator(self.seed_for(*keys), device or self.device)

    def progress(self, iterable: Iterable[T], *, desc: str = "", total: int | None = None) -> Iterator[T]:
        return progress(iterable, desc=f"{self.method}: {desc}" if desc else self.method, total=total)

    def step_progress(self, desc: str, total: int | None = None) -> Callable[[], None]:
        """:func:`reprolab.core.progress.step_progress` with the method's name in front."""
        return step_progress(f"{self.method}: {desc}", total)

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoints_dir / CHECKPOINT_NAME

    def elapsed_s(self) -> float:
        """Seconds spent on this run, including segments before a resume."""
        return self.elapsed_before_s + time.perf_counter() - self._started

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads of this process) spent on this run, across resumes.

        On a shared machine this is the fairer measure of a run's cost than the wall time.
        """
        return self.cpu_before_s + time.process_time() - self._cpu_started

    def save_checkpoint(self, state: Mapping[str, Any]) -> Path:
        """Atomically save ``state`` with the RNG state, the metrics-log position and report extras."""
        payload = {
            "user": dict(state),
            "rng": get_rng_state(),
            "metrics_lines": self._metrics_line_count(),
            "tables": json.dumps(self.tables),
            "notes": list(self.notes),
            "units": json.dumps(self.units),
            "elapsed_s": self.elapsed_s(),
            "cpu_s": self.cpu_s(),
        }
        return save_checkpoint(self.checkpoint_path, payload, fingerprint=self.fingerprint)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """On ``--resume``, the state saved last (RNG, metrics log and report extras restored); else None."""
        if not self.resume or not self.checkpoint_path.exists():
            return None
        payload = load_checkpoint(self.checkpoint_path, fingerprint=self.fingerprint, map_location=self.device)
        _check_run_payload(self.checkpoint_path, payload)
        try:
            tables = json.loads(payload["tables"])
            set_rng_state(payload["rng"])
        except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as err:
            raise CheckpointError(f"{self.checkpoint_path}: not a complete run checkpoint ({err})") from None
        self._truncate_metrics(int(payload["metrics_lines"]))
        self.tables = tables
        self.notes = list(payload["notes"])
        self.units = json.loads(payload.get("units", "{}"))  # absent in checkpoints written before units existed
        self.elapsed_before_s = float(payload["elapsed_s"])
        self.cpu_before_s = float(payload.get("cpu_s", 0.0))  # absent in checkpoints written before it existed
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()
        return payload["user"]


_RUN_PAYLOAD = {"user": dict, "rng": dict, "metrics_lines": int, "tables": str, "notes": list, "elapsed_s": float}


def _check_run_payload(path: Path, payload: Any) -> None:
    """A run checkpoint holds what :meth:`RunContext.save_checkpoint` wrote; anything else is one line."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a run checkpoint (its state is a {type(payload).__name__})")
    for key, kind in _RUN_PAYLOAD.items():
        value = payload.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and value < 0):
            raise CheckpointError(f"{path}: not a complete run checkpoint (entry {key!r} missing or invalid)")
    rng = payload["rng"]
    if not all(part in rng for part in ("python", "numpy", "torch")):
        raise CheckpointError(f"{path}: not a complete run checkpoint (entry 'rng' lacks python/numpy/torch state)")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
