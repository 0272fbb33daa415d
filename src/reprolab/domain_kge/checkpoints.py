"""In-unit checkpoints of DRE's two training stages, so a paper-scale unit (hours on a CPU) spans sessions.

Base training uses PyKEEN's own training-loop checkpointing (``checkpoint_name``, ``checkpoint_directory``,
``checkpoint_frequency`` of :meth:`pykeen.training.TrainingLoop.train`): PyKEEN decides *when* to save (every
``checkpoint_frequency`` minutes and after the last epoch) and resumes from the last saved epoch with the
model, the optimizer, the epoch losses and the Python/NumPy/torch RNG states it saved. Only the *file* is
ours: :class:`ResumableSLCWA` writes it through :func:`reprolab.core.checkpoint.save_checkpoint` (a temp
file, fsync, rename: a kill mid-write leaves the previous checkpoint, never a truncated one) and reads it
with ``torch.load(weights_only=True, map_location=...)`` and the run's fingerprint, where PyKEEN writes in
place and unpickles arbitrary objects. The domain fit (full-batch Adam, no randomness) saves its domains,
optimizer and step through the same helpers (:func:`save_stage`, :func:`load_stage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pykeen.training import SLCWATrainingLoop

from reprolab.core.checkpoint import load_checkpoint, save_checkpoint
from reprolab.core.errors import CheckpointError
from reprolab.core.seeding import get_rng_state, set_rng_state

__all__ = ["ResumableSLCWA", "StageCheckpoint", "load_stage", "save_stage"]


@dataclass
class StageCheckpoint:
    """Where one stage (base training or domain fit) of one unit checkpoints, and how often.

    ``minutes``: save when at least this many whole minutes passed since the last save (PyKEEN's
    ``checkpoint_frequency`` semantics; 0 = after every epoch / step); the stage's end is always saved.
    ``elapsed_s`` is the stage's wall time summed over all sessions, set by the stage as it runs.
    """

    path: Path
    fingerprint: str
    minutes: int = 5
    elapsed_s: float = field(default=0.0, init=False)

    def due(self, last_save: float) -> bool:
        return (time.time() - last_save) // 60 >= self.minutes

    def remove_partial_writes(self) -> None:
        """Delete the temp files of writes a SIGKILL cut short (``atomic_write`` cleans up on any exception, but a
        killed process runs no cleanup); the checkpoint itself is never one of them."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def save_stage(checkpoint: StageCheckpoint, state: dict[str, Any]) -> None:
    """Atomically write one stage's ``state`` (tensors, numbers, lists, dicts) with the run's fingerprint."""
    save_checkpoint(checkpoint.path, state, fingerprint=checkpoint.fingerprint)


def load_stage(checkpoint: StageCheckpoint) -> dict[str, Any] | None:
    """The stage's saved state, ``None`` when nothing was saved yet; a foreign or corrupt file is one line."""
    if not checkpoint.path.is_file():
        return None
    return load_checkpoint(checkpoint.path, fingerprint=checkpoint.fingerprint, map_location="cpu")


class ResumableSLCWA(SLCWATrainingLoop):
    """PyKEEN's sLCWA loop whose checkpoint file is atomic, weights-only and fingerprinted (see module doc)."""

    def __init__(self, *args: Any, checkpoint: StageCheckpoint, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = checkpoint
        self._elapsed_before = 0.0
        self._segment_start = time.perf_counter()

    def train(self, *args: Any, **kwargs: Any) -> list[float] | None:  # type: ignore[override]
        """PyKEEN's ``train`` writing to and resuming from ``self.stage.path``; records the stage's time."""
        kwargs.update(
            checkpoint_directory=self.stage.path.parent,
            checkpoint_name=self.stage.path.name,
            checkpoint_frequency=self.stage.minutes,
        )
        self._segment_start = time.perf_counter()
        try:
            return super().train(*args, **kwargs)
        finally:
            self.stage.elapsed_s = self._elapsed()

    def _elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._segment_start

    def _save_state(self, path: Any, stopper: Any = None, best_epoch_model_checkpoint_file_path: Any = None,
                    triples_factory: Any = None) -> None:
        """PyKEEN's checkpoint contents (no stopper, no scheduler: DRE uses neither), written atomically."""
        if self.optimizer is None or stopper is not None or self.lr_scheduler is not None:
            raise CheckpointError(f"{path}: only an sLCWA loop with an optimizer, no stopper or scheduler checkpoints")
        state = {
            "epoch": int(self._epoch),
            "losses": [float(loss) for loss in self.losses_per_epochs],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "checksum": self.checksum,  # PyKEEN's own check: same model and optimizer configuration
            "rng": get_rng_state(),
            "elapsed_s": self._elapsed(),
        }
        save_checkpoint(Path(path), state, fingerprint=self.stage.fingerprint)

    def _load_state(self, path: Any, triples_factory: Any = None) -> tuple[None, None]:
        """Restore what :meth:`_save_state` wrote; PyKEEN then continues at the epoch after ``epoch``."""
        if self.optimizer is None:
            raise CheckpointError(f"{path}: the training loop has no optimizer to restore")
        state = load_checkpoint(Path(path), fingerprint=self.stage.fingerprint, map_location="cpu")
        if state.get("checksum") != self.checksum:
            raise CheckpointError(f"{path}: checkpoint of another model or optimizer configuration")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
            self._epoch = int(state["epoch"])
            self.losses_per_epochs = list(state["losses"])
            self._elapsed_before = float(state["elapsed_s"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path}: not a complete base-training checkpoint ({err})") from None
        self._segment_start = time.perf_counter()
        return None, None
