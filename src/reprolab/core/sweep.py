"""Resumable units of work: a sweep of independent training runs that survives being killed.

Most experiments are a set of independent *units* (sweep points, folds, seeds, estimators), each a
training loop. :class:`Sweep` records finished units in the run's checkpoint and, inside a unit, saves
the model, optimiser, step and data-generator state every ``checkpoint_every`` steps. Killed at any point
and resumed with ``--resume``, the run ends with the same metrics as an uninterrupted one, because each
unit draws its data from its own generator seeded by :meth:`RunContext.seed_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from reprolab.core.progress import announce
from reprolab.core.runs import RunContext

__all__ = ["Sweep"]

StepFn = Callable[[int], Mapping[str, float]]
# A loss function for :meth:`Sweep.minimise`: the step's loss, or the loss and extra scalars to log.
LossFn = Callable[[int], "torch.Tensor | tuple[torch.Tensor, Mapping[str, float]]"]


class Sweep:
    """Tracks finished units and in-progress training state for one run."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        state = ctx.load_checkpoint() or {}
        self.done: dict[str, Any] = dict(state.get("done", {}))
        self._partial: dict[str, Any] | None = state.get("partial")

    def is_done(self, unit: str) -> bool:
        return unit in self.done

    def result(self, unit: str) -> Any:
        return self.done[unit]

    def complete(self, unit: str, result: Any) -> Any:
        """Record ``result`` (numbers, strings, lists, dicts, tensors) for ``unit`` and checkpoint."""
        self.done[unit] = result
        self._partial = None
        self._save()
        announce(f"{self.ctx.method}: {unit} done ({self.ctx.elapsed_s():.0f} s into the run)")
        return result

    def once(self, unit: str, compute: Callable[..., Any], *args: Any, log: bool = False, **kwargs: Any) -> Any:
        """The recorded result of ``unit``; the first time, ``compute(*args, **kwargs)`` it (logging its scalars
        with ``log``, before the checkpoint that records it) and record it. A resumed run skips the work."""
        if not self.is_done(unit):
            result = compute(*args, **kwargs)
            if log:
                self.ctx.log(unit=unit, **result)
            self.complete(unit, result)
        return self.result(unit)

    def _save(self) -> None:
        self.ctx.save_checkpoint({"done": self.done, "partial": self._partial})

    def train(
        self,
        unit: str,
        *,
        steps: int,
        step_fn: StepFn,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator | None = None,
        checkpoint_every: int = 0,
        log_every: int = 0,
        scheduler: Any = None,
    ) -> None:
        """Run ``step_fn(step)`` for ``steps`` steps, resuming from a partial checkpoint of ``unit``.

        ``step_fn`` does one optimisation step and returns scalars to log. Every ``log_every`` steps they
        go to ``metrics.jsonl`` (with ``unit`` and ``step``); every ``checkpoint_every`` steps the
        model, optimiser, scheduler and generator states are saved.
        """
        start = 0
        partial = self._partial
        if partial is not None and partial.get("unit") == unit:
            model.load_state_dict(partial["model"])
            optimizer.load_state_dict(partial["optimizer"])
            if scheduler is not None and "scheduler" in partial:
                scheduler.load_state_dict(partial["scheduler"])
            if generator is not None and "generator" in partial:
                generator.set_state(partial["generator"].cpu())
            start = int(partial["step"])
        for step in self.ctx.progress(range(start, steps), desc=unit, total=steps - start):
            values = step_fn(step)
            if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
                self.ctx.log(unit=unit, step=step + 1, **{k: float(v) for k, v in values.items()})
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                self._partial = {
                    "unit": unit,
                    "step": step + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                }
                if scheduler is not None:
                    self._partial["scheduler"] = scheduler.state_dict()
                if generator is not None:
                    self._partial["generator"] = generator.get_state()
                self._save()

    def fit_once(self, unit: str, model: torch.nn.Module, fit: Callable[[], None]) -> torch.nn.Module:
        """Load ``model``'s trained weights when ``unit`` is done; otherwise run ``fit()`` (which trains ``model``,
        resumably through this sweep) and record the weights as the unit's result. Returns ``model``."""
        if self.is_done(unit):
            model.load_state_dict(self.result(unit)["state"])
        else:
            fit()
            self.complete(unit, {"state": model.state_dict()})
        return model

    def minimise(
        self,
        unit: str,
        *,
        steps: int,
        loss_fn: LossFn,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator | None = None,
        checkpoint_every: int = 0,
        log_every: int = 0,
        scheduler: Any = None,
    ) -> None:
        """:meth:`train` for the common loop: ``loss_fn(step)`` builds the loss (optionally with extra scalars);
        the gradient step (zero_grad, backward, optimiser step, then ``scheduler.step()``) is taken here and
        ``loss`` is logged with the extras."""

        def step_fn(step: int) -> Mapping[str, float]:
            out = loss_fn(step)
            loss, extras = out if isinstance(out, tuple) else (out, {})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            return {"loss": float(loss.detach()), **extras}

        self.train(
            unit,
            steps=steps,
            step_fn=step_fn,
            model=model,
            optimizer=optimizer,
            generator=generator,
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            scheduler=scheduler,
        )
