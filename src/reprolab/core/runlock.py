"""One owner per run folder: atomic creation and an OS lock held for the whole run.

Two ``reprolab run`` (or ``--resume``, or ``reproduce``) processes on the same ``--out`` would interleave
``metrics.jsonl`` and leave one seed's ``config.yaml`` beside another seed's ``results.json``. A run therefore
creates its folder with one ``mkdir`` (atomic) and then holds an exclusive ``fcntl.flock`` on
``<folder>/.lock`` until it ends. The kernel drops the lock when its holder dies, so a lock file left by a
killed process is stale by construction and the next run simply takes it over; the file only carries the
holder's PID for the refusal message.

A run that fails before it wrote anything resumable (no checkpoint, no results) removes the folder it
created -- never a folder that existed before it started.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import TracebackType

from reprolab.core.errors import ConfigError

try:  # POSIX; elsewhere runs are not locked (a documented limitation)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolderLock", "remove_stale_temp_files"]

LOCK_NAME = ".lock"


class RunFolderLock:
    """Own ``folder`` for the duration of a ``with`` block.

    ``created`` tells whether this process made the folder (only then may :meth:`discard` remove it).
    Raises :class:`ConfigError` naming the holder's PID when another live process owns the folder.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.created = False
        self._fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> RunFolderLock:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.folder.mkdir()  # atomic: exactly one of several racing processes creates it
            self.created = True
        except FileExistsError:
            if not self.folder.is_dir():
                raise ConfigError(f"{self.folder}: exists and is not a folder; choose another --out") from None
        for _ in range(20):  # the folder may be removed under us by a failing owner; then try again
            if self._try_lock():
                return self
        raise ConfigError(f"{self.folder}: could not lock the run folder (it keeps being removed); try again")

    def _try_lock(self) -> bool:
        path = self.lock_path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # a failing owner removed the folder between our mkdir and open
            try:
                self.folder.mkdir(parents=True)
                self.created = True
            except FileExistsError:
                pass
            return False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                for _ in range(50):  # the holder writes its PID right after locking
                    if holder:
                        break
                    time.sleep(0.01)
                    holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise ConfigError(
                    f"{self.folder}: run folder is in use by {who} (lock {path}); wait for it to finish "
                    "or choose another --out"
                ) from None
            # The lock must be on the file that is at ``path`` now, not on one a failing owner just unlinked.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def discard(self) -> None:
        """Remove the folder if this process created it (call while holding the lock)."""
        if self.created and self._fd is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RunFolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the ``.*.tmp`` files an atomic write left when its process was killed (caller holds the lock)."""
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
