"""Execution engine: what runs a list of independent runs (method x preset x seed x overrides).

``reproduce`` and ``sweep`` build a list of :class:`RunSpec`, hand it to :func:`execute`, then aggregate the
outcomes, which come back in spec order whatever order the runs finished in.

Two paths behind one signature:

* **serial** (``jobs=1``, or nothing to spread): each run in this process, one after the other. Ray is not
  imported on this path, so a plain ``pip install reprolab`` keeps working.
* **Ray** (``jobs > 1`` or ``address``): each run is one Ray task. Without ``address`` a local Ray instance is
  started with ``num_cpus=jobs``, no dashboard, on the loopback address; ``address`` (``host:port``,
  ``ray://host:port`` or ``auto``) joins a running cluster (``_join_target``: a head on this machine is joined
  on the address it listens on). A task asks for ``--threads`` CPUs (torch keeps that many threads, as in a
  serial run) and ``gpus_per_task`` GPUs. A task runs the same :func:`run_spec` as the serial path, so its metrics are
  bit-identical to the serial run's. A task whose worker dies is retried by Ray; the retry resumes from the
  run's checkpoint (``--resume`` semantics, :meth:`RunSpec.should_resume`) and ends with the same metrics.

Where run folders land: a task writes its run folder straight into the shared output path when it can see
that path (it looks for a marker file the driver wrote there). Otherwise (a cluster without a shared
filesystem) it runs in a local scratch folder and returns the folder's files -- results.json,
metrics.jsonl, report, figures and checkpoints up to :data:`MAX_SHIPPED_BYTES` each -- and the driver writes them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reprolab.core.errors import ConfigError, ReproError

__all__ = [
    "DISTRIBUTED_HINT",
    "RunOutcome",
    "RunSpec",
    "check_available",
    "default_jobs",
    "execute",
    "finished_line",
    "run_spec",
]

RESULTS_FILE = "results.json"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
DISTRIBUTED_HINT = "pip install 'reprolab[distributed]'"
# A file larger than this stays on the worker in no-shared-filesystem mode (named in the outcome's notes):
# run folders are small, checkpoints of the paper presets may not be.
MAX_SHIPPED_BYTES = 64 * 2**20
# Ray retries a task whose worker process died this many times (application errors are not retried: a run
# that raises is reported as an error outcome, exactly as on the serial path).
TASK_RETRIES = 3
# Environment a task takes from the driver when its worker does not set it (data/cache homes, offline flags).
_FORWARDED_ENV = ("MPLBACKEND", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_OBJECT_STORE_BYTES = 1 * 2**30

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunSpec:
    """One independent run: the arguments of :func:`reprolab.core.runner.run_experiment`.

    ``label`` names the run in progress lines (a sweep's grid point); it is not part of the run's identity.
    """

    method: str
    preset: str
    seed: int
    out: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data: str | Path | None = None
    device: str = "cpu"
    threads: int | None = None
    perturb: float = 0.0
    label: str = ""

    def should_resume(self) -> bool:
        """Resume when the folder already holds a finished run or a checkpoint (a re-run after a kill)."""
        return (self.out / RESULTS_FILE).exists() or (self.out / CHECKPOINT_FILE).exists()

    def is_fresh(self) -> bool:
        """The folder is absent or empty: whatever appears in it later was written by this run."""
        return not self.out.exists() or not any(self.out.iterdir())

    @property
    def name(self) -> str:
        return f"{self.label or self.method} seed {self.seed}"


@dataclass(frozen=True)
class RunOutcome:
    """The results.json of a finished run, or the one-line error of a failed one."""

    spec: RunSpec
    results: dict[str, Any] | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Run one spec in this process and return its results.json."""
    from reprolab.core.runner import run_experiment

    return run_experiment(
        spec.method,
        spec.preset,
        spec.overrides,
        seed=spec.seed,
        out=spec.out,
        data=spec.data,
        resume=spec.should_resume(),
        device=spec.device,
        threads=spec.threads,
        perturb=spec.perturb,
    )


def _run_caught(spec: RunSpec) -> RunOutcome:
    try:
        return RunOutcome(spec, results=run_spec(spec))
    except ReproError as err:
        return RunOutcome(spec, error=str(err))
    except Exception as err:  # a crashing method must not hide the other runs' results
        return RunOutcome(spec, error=f"{type(err).__name__}: {err}")


# -- progress ------------------------------------------------------------------------------------------------
def verdict_counts(claims: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Claims per verdict (``pass``/``fail``/``inconclusive``); results written before verdicts count ``passed``."""
    from reprolab.core.claims import claim_verdict

    return Counter(claim_verdict(claim) for claim in claims)


def finished_line(outcome: RunOutcome) -> str:
    """One line for a finished run: name, wall and CPU time, verdict counts (or its error)."""
    if outcome.error is not None or outcome.results is None:
        return f"{outcome.spec.name}: ERROR {outcome.error}"
    results = outcome.results
    counts = verdict_counts(results.get("claims", []))
    order = ["pass", "fail", "inconclusive", *sorted(set(counts) - {"pass", "fail", "inconclusive"})]
    verdicts = ", ".join(f"{counts[v]} {v}" for v in order if counts[v]) or "no claims"
    cpu = results.get("cpu_s")
    timing = f"{results.get('runtime_s', 0.0):.1f} s wall" + ("" if cpu is None else f", {cpu:.1f} s CPU")
    return f"{outcome.spec.name}: {timing}; {verdicts}"


class _Progress:
    """One line per finished run and, on an interactive stderr, an overall bar under them."""

    def __init__(self, total: int, log: Log | None) -> None:
        self.total, self.done, self.log = total, 0, log
        self.bar: Any = None
        if log is not None and total > 1:
            from reprolab.core.progress import progress_enabled

            if progress_enabled():
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="runs", unit="run", dynamic_ncols=True, file=sys.stderr)

    def say(self, line: str) -> None:
        if self.log is None:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            self.log(line)

    def finished(self, outcome: RunOutcome) -> None:
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {finished_line(outcome)}")
        for note in outcome.notes:
            self.say(f"  {note}")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- the entry point -----------------------------------------------------------------------------------------
def default_jobs() -> int:
    """The cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def execute(
    specs: Sequence[RunSpec],
    *,
    jobs: int | None = None,
    address: str | None = None,
    gpus_per_task: float = 0,
    log: Log | None = None,
    ship: bool | None = None,
) -> list[RunOutcome]:
    """Run every spec and return their outcomes in spec order.

    ``jobs``: runs at once (default: every core this process may use). ``jobs=1`` without ``address`` is the
    serial path, with no Ray import. ``address``: join that Ray cluster (``ray://host:port`` or ``auto``).
    ``gpus_per_task``: GPUs each Ray task asks for (the specs' ``device`` must not be ``cpu``).
    ``ship``: ``None`` (default) lets each task find out whether it sees the output path; ``True`` forces the
    no-shared-filesystem mode (the task returns its run folder's files and this process writes them).
    """
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if gpus_per_task < 0:
        raise ConfigError(f"--gpus-per-task must be >= 0, got {gpus_per_task}")
    if gpus_per_task and any(spec.device == "cpu" for spec in specs):
        raise ConfigError("--gpus-per-task needs --device cuda (or auto): the runs would not use the GPUs")
    report = _Progress(len(specs), log)
    try:
        requested = jobs
        jobs = jobs or min(default_jobs(), max(len(specs), 1))
        if address is None and (jobs <= 1 or len(specs) <= 1):
            return _execute_serial(specs, report)
        ray = _import_ray(explicit=requested is not None or address is not None)
        if ray is None:
            report.say(f"Ray is not installed ({DISTRIBUTED_HINT}); running the {len(specs)} runs one at a time")
            return _execute_serial(specs, report)
        # Joining a cluster, its resources decide how many run at once unless --jobs says otherwise.
        limit = jobs if address is None or requested is not None else len(specs)
        return _execute_ray(
            ray, specs, jobs=jobs, limit=limit, address=address, gpus_per_task=gpus_per_task, ship=ship, report=report
        )
    finally:
        report.close()


def _execute_serial(specs: Sequence[RunSpec], report: _Progress) -> list[RunOutcome]:
    outcomes = []
    for spec in specs:
        report.say(f"{spec.name} -> {spec.out}")
        outcomes.append(_run_caught(spec))
        report.finished(outcomes[-1])
    return outcomes


def check_available(jobs: int | None, address: str | None) -> None:
    """Refuse up front (before any folder is made) an explicit ``--jobs > 1``/``--address`` without Ray, and an
    ``--address`` where no Ray head answers."""
    import importlib.util

    if (address is not None or (jobs or 1) > 1) and importlib.util.find_spec("ray") is None:
        raise ConfigError(f"--jobs > 1 and --address run on Ray, which is not installed: {DISTRIBUTED_HINT}")
    if address is not None:
        _import_ray(explicit=True)  # Ray's settings from the environment first
        _join_target(address)


def _import_ray(*, explicit: bool) -> Any:
    """Ray, or None when it is absent and nobody asked for it (the default --jobs falls back to serial).

    Ray reads some settings from the environment when imported: set them first.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        if explicit:
            raise ConfigError(
                f"--jobs > 1 and --address run on Ray, which is not installed: {DISTRIBUTED_HINT}"
            ) from None
        return None
    return ray


# -- the Ray path --------------------------------------------------------------------------------------------
def _connect(ray: Any, jobs: int, address: str | None) -> Callable[[], None] | None:
    """Start a local Ray instance or join ``address``; the call that shuts it down again, or None when Ray was
    already set up by the caller (a test, a notebook), which then keeps it."""
    if ray.is_initialized():
        return None  # the caller set Ray up itself; use it as it is
    logging.getLogger(_AUTH_LOGGER).addFilter(_drop_auth_enabled_notice)
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "namespace": "reprolab"}
    where = f"--address {address}" if address else "a local Ray instance"
    if address is None:
        # A one-machine instance talks over loopback only: Ray takes 127.0.0.1 as the node address instead of
        # the machine's network interface (nothing of a local run leaves the machine), unless the user set
        # Ray's switch to 1 himself.
        target, loopback = "local", os.environ.get(LOOPBACK_ENV, "0").lower() not in ("1", "true")
    else:
        target, loopback = _join_target(address)
        _send_auth_token()
    restore = _node_address_mode(loopback)
    try:
        if address is None:
            # address="local": a new instance even when a `ray start` cluster runs on this machine
            ray.init(address="local", num_cpus=jobs, include_dashboard=False,
                     object_store_memory=_OBJECT_STORE_BYTES, **quiet)
        else:
            ray.init(address=target, **quiet)
    except Exception as err:  # ConnectionError, ValueError, RuntimeError from a wrong address or a dead head
        restore()
        cause = f"; {_last_line(err.__cause__)[:240]}" if err.__cause__ is not None else ""
        raise ConfigError(f"{where}: could not start/join Ray ({_first_line(err)}{cause})") from err

    def close() -> None:
        ray.shutdown()
        restore()

    return close


_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
# Ray's switch for multi-machine clusters (ray_constants.ENABLE_RAY_CLUSTER): "0" makes a node, and every
# process that starts or joins one, use the loopback address 127.0.0.1 as this machine's node address.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# How long joining waits for the head's port to answer: Ray's own client retries an unreachable address for
# many minutes (it would look like a hang).
_PROBE_TIMEOUT_S = 10.0


def _join_target(address: str) -> tuple[str, bool]:
    """The address to hand to ``ray.init`` and whether this process must use the loopback node address.

    Ray replaces a loopback host (``127.0.0.1``, ``localhost``) in an address by the machine's interface
    address unless the process runs with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` -- a setting Ray reads once,
    when it is imported. A head started with that setting listens on 127.0.0.1 only, so a driver without it
    retried the interface address for many minutes (the former hang of the cluster test). The head's port
    decides instead: a head on this machine answering on the interface address (Ray's default head listens
    on every address) is joined there, as Ray does by default; one answering on 127.0.0.1 only is joined over
    loopback. An address where nothing answers is one line, not a hang.
    """
    if address.startswith("ray://"):
        return address, False  # Ray Client: a gRPC proxy in front of the cluster, no node address of ours
    if address == "auto":
        address = _recorded_address()
    host, port = _split_address(address)
    if host.lower() in _LOOPBACK_HOSTS:
        interface = _interface_address()
        if interface not in _LOOPBACK_HOSTS and _answers(interface, port):
            return f"{interface}:{port}", False
        if _answers("127.0.0.1", port):
            return f"127.0.0.1:{port}", True
        raise ConfigError(f"--address {address}: no Ray head answers on port {port} of this machine")
    if not _answers(host, port):
        raise ConfigError(f"--address {address}: no Ray head answers there (within {_PROBE_TIMEOUT_S:.0f} s)")
    return address, False


def _interface_address() -> str:
    """The address Ray puts in place of a loopback host when it runs as a multi-machine cluster."""
    try:
        from ray._common.network_utils import node_ip_address_from_perspective
    except ImportError:
        from ray.util import get_node_ip_address as node_ip_address_from_perspective
    return node_ip_address_from_perspective(None)


def _recorded_address() -> str:
    """The head ``address=auto`` joins: $RAY_ADDRESS, else the last `ray start --head` on this machine."""
    from ray._private.services import get_ray_address_from_environment

    try:
        found = get_ray_address_from_environment("auto", None)
    except ConnectionError:
        found = None
    if not found:
        raise ConfigError("--address auto: no Ray cluster was started on this machine (run `ray start --head`)")
    return found


def _split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6-host]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected host:port, auto or ray://host:port")
    return host.strip("[]"), int(port)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _node_address_mode(loopback: bool) -> Callable[[], None]:
    """Make this process (and the Ray processes it starts) use the loopback node address or the interface
    address; return the call that puts the previous setting back.

    The environment variable reaches the processes a local instance starts; the constant is what Ray in this
    process reads (imported before us by a test or a notebook, Ray no longer looks at the variable).
    """
    previous_env = os.environ.get(LOOPBACK_ENV)
    os.environ[LOOPBACK_ENV] = "0" if loopback else "1"
    try:
        from ray._private import ray_constants
    except ImportError:  # a Ray without the switch: its own default
        ray_constants = None
    previous_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if previous_flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = not loopback

    def restore() -> None:
        if previous_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = previous_env
        if previous_flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = previous_flag

    return restore


def _drop_auth_enabled_notice(record: logging.LogRecord) -> bool:
    """Ray announces on every start that token authentication is on (the safe default): not news for a user
    watching one line per run. Its warnings that authentication is *off* still show."""
    return not record.getMessage().startswith("Token authentication is enabled")


def _send_auth_token() -> None:
    """A cluster started by `ray start` requires its token (Ray's token authentication). Ray sends the token
    this machine holds with ``address=auto`` but not with an explicit address; do what ``auto`` does."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _execute_ray(
    ray: Any,
    specs: Sequence[RunSpec],
    *,
    jobs: int,
    limit: int,
    address: str | None,
    gpus_per_task: float,
    ship: bool | None,
    report: _Progress,
) -> list[RunOutcome]:
    outcomes: list[RunOutcome | None] = [None] * len(specs)
    queue = []
    for index, spec in enumerate(specs):
        if (spec.out / RESULTS_FILE).exists():  # finished earlier: reading it back needs no task
            outcomes[index] = _run_caught(spec)
            report.finished(outcomes[index])
        else:
            queue.append(index)
    if not queue:
        return outcomes  # type: ignore[return-value]
    close = _connect(ray, jobs, address)
    marker = _write_marker(specs) if ship is None else None
    try:
        task = ray.remote(_ray_task)
        env = {k: v for k, v in os.environ.items() if k.startswith("REPROLAB_") or k in _FORWARDED_ENV}
        in_flight: dict[Any, int] = {}
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                index = queue.pop(0)
                spec = specs[index]
                options = {
                    "num_cpus": _task_cpus(spec, None if address else jobs),
                    "num_gpus": gpus_per_task,
                    "max_retries": TASK_RETRIES,
                    "retry_exceptions": False,
                    "name": spec.name,
                }
                inputs = None if spec.is_fresh() else _pack(spec.out)[0]
                ref = task.options(**options).remote(_absolute(spec), spec.is_fresh(), marker, ship, env, inputs)
                in_flight[ref] = index
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                index = in_flight.pop(ref)
                outcomes[index] = _collect(ray, ref, specs[index])
                report.finished(outcomes[index])
    finally:
        if marker is not None:
            Path(marker[0]).unlink(missing_ok=True)
        if close is not None:
            close()
    return outcomes  # type: ignore[return-value]


def _task_cpus(spec: RunSpec, cap: int | None) -> float:
    """A task asks for as many CPUs as torch threads it runs (``--threads``, else $REPROLAB_THREADS, else 1)."""
    try:
        threads = spec.threads or int(os.environ.get("REPROLAB_THREADS", "1"))
    except ValueError:
        threads = 1  # the run itself reports the malformed variable as its error
    threads = max(threads, 1)
    return min(threads, cap) if cap else threads


def _absolute(spec: RunSpec) -> RunSpec:
    """Workers may not share the driver's working directory: send absolute paths."""
    data = spec.data
    if data is not None:
        data = Path(data).expanduser().absolute()
    return replace(spec, out=spec.out.expanduser().absolute(), data=data)


def _collect(ray: Any, ref: Any, spec: RunSpec) -> RunOutcome:
    try:
        payload = ray.get(ref)
    except Exception as err:  # the worker died more than TASK_RETRIES times, the node was lost, ...
        return RunOutcome(spec, error=f"Ray task failed: {_first_line(err)}")
    notes = tuple(payload.get("notes", ()))
    if payload.get("files") is not None:
        _unpack(spec.out, payload["files"])
    return RunOutcome(spec, results=payload["results"], error=payload["error"], notes=notes)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    """Ray wraps the real cause's traceback into a message; its last line names the error."""
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__


# -- the task (runs on a Ray worker) ------------------------------------------------------------------------
def _ray_task(
    spec: RunSpec,
    fresh: bool,
    marker: tuple[str, str] | None,
    ship: bool | None,
    env: Mapping[str, str],
    inputs: Mapping[str, bytes] | None,
) -> dict[str, Any]:
    """One run on a worker; returns the outcome (and, without a shared filesystem, the run folder's files).

    ``fresh``: the folder was empty when the driver submitted the task, so files found in it now without a
    checkpoint were left by an earlier attempt of this task killed before its first checkpoint: they are
    removed and the run starts over. With a checkpoint, the run resumes from it (``RunSpec.should_resume``).
    """
    for key, value in env.items():
        os.environ.setdefault(key, value)  # the worker's own settings win (its data may live elsewhere)
    os.environ["REPROLAB_PROGRESS"] = "0"  # a worker's stderr goes to Ray's log files: no bars there
    if ship is None:
        ship = not _marker_visible(marker)
    notes: list[str] = []
    if not ship:
        if fresh and spec.out.exists() and not spec.should_resume():
            shutil.rmtree(spec.out)
        outcome = _run_caught(spec)
        return {"results": outcome.results, "error": outcome.error, "files": None, "notes": notes}
    local = replace(spec, out=_scratch_dir(spec))
    if local.out.exists() and not local.should_resume():
        shutil.rmtree(local.out)  # an earlier attempt killed before its first checkpoint
    if inputs and not local.out.exists():
        _unpack(local.out, inputs)  # the driver's partial run folder: resume it here
    outcome = _run_caught(local)
    files = None
    if outcome.results is not None:
        files, skipped = _pack(local.out)
        host = socket.gethostname()
        notes += [f"left on {host}:{local.out / name} ({n / 2**20:.0f} MiB, too big to ship)" for name, n in skipped]
        if not skipped:
            shutil.rmtree(local.out, ignore_errors=True)
    return {"results": outcome.results, "error": outcome.error, "files": files, "notes": notes}


def _scratch_dir(spec: RunSpec) -> Path:
    """A worker-local run folder, the same for every attempt of one spec (so a retry resumes from it)."""
    identity = repr((spec.method, spec.preset, spec.seed, sorted(spec.overrides.items()), str(spec.out), spec.perturb))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "reprolab-ray-runs" / f"{spec.method}-seed{spec.seed}-{digest}"


def _write_marker(specs: Sequence[RunSpec]) -> tuple[str, str]:
    """A file under the specs' common output folder that only a worker sharing that filesystem can read."""
    parents = [str(spec.out.expanduser().absolute().parent) for spec in specs]
    root = Path(os.path.commonpath(parents))
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    path = root / f".reprolab-driver-{token}"
    path.write_text(token)
    return str(path), token


def _marker_visible(marker: tuple[str, str] | None) -> bool:
    if marker is None:
        return True
    try:
        return Path(marker[0]).read_text() == marker[1]
    except OSError:
        return False


def _pack(folder: Path) -> tuple[dict[str, bytes], list[tuple[str, int]]]:
    """Every file under ``folder`` (relative POSIX path -> bytes) up to MAX_SHIPPED_BYTES, and those left out."""
    files: dict[str, bytes] = {}
    skipped: list[tuple[str, int]] = []
    if not folder.is_dir():
        return files, skipped
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue  # atomic_write's temp files are half-written by definition
        name = path.relative_to(folder).as_posix()
        size = path.stat().st_size
        if size > MAX_SHIPPED_BYTES:
            skipped.append((name, size))
        else:
            files[name] = path.read_bytes()
    return files, skipped


def _unpack(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` under ``folder``, each atomically (a reader never sees half a results.json)."""
    from reprolab.core.io import atomic_write

    root = folder.absolute()
    for name, data in files.items():
        target = Path(os.path.normpath(root / name))
        if root not in target.parents:
            raise ReproError(f"{folder}: refusing to write {name!r} outside the run folder")
        atomic_write(target, lambda handle, data=data: handle.write(data))
    (root / "figures").mkdir(parents=True, exist_ok=True)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
