"""Data home, a registry of real datasets, and verified downloads.

Real datasets live under the data home: ``--data DIR``, else ``$REPROLAB_DATA``, else
``$XDG_CACHE_HOME/reprolab`` (``~/.cache/reprolab``). Every method also ships an embedded default that it
generates or that a package bundles, so nothing here is needed for ``reprolab run`` to work offline.

:func:`download` verifies a sha256 before it keeps a file and :func:`safe_extract` refuses archive
members with absolute paths, ``..`` components or links. Real-data loaders may call them on a user's
request; tests never do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from reprolab.core.errors import DataError, DatasetMissingError

__all__ = [
    "DatasetInfo",
    "cache_home",
    "data_home",
    "dataset_info",
    "download",
    "fetch_hint",
    "list_datasets",
    "register_dataset",
    "require_dataset",
    "safe_extract",
    "sha256_file",
]


def data_home(override: str | Path | None = None) -> Path:
    """The folder where real datasets are looked for (not created)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("REPROLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "reprolab"


def cache_home() -> Path:
    """Where derived artefacts (e.g. a pretrained embedded model) are cached: ``$REPROLAB_CACHE``, else
    ``$XDG_CACHE_HOME/reprolab-cache``. Kept apart from the data home, which may be a read-only dataset copy."""
    env = os.environ.get("REPROLAB_CACHE")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "reprolab-cache"


@dataclass(frozen=True)
class DatasetInfo:
    """What a real dataset is, where it comes from, and the layout expected under the data home.

    ``subdir`` is the folder under the data home; ``required_files`` are paths relative to it that must
    exist; ``sha256`` optionally maps those paths to checksums verified by :func:`require_dataset`.
    ``presets`` names the method's presets that run on this dataset (``reprolab list`` shows them per dataset);
    empty when a setting selects it instead (its description says which).
    """

    name: str
    description: str
    source: str
    subdir: str
    required_files: tuple[str, ...] = ()
    layout: str = ""
    license: str = ""
    sha256: dict[str, str] = field(default_factory=dict)
    embedded: bool = False
    presets: tuple[str, ...] = ()

    def path(self, home: str | Path | None = None) -> Path:
        return data_home(home) / self.subdir

    def missing_files(self, home: str | Path | None = None) -> list[str]:
        root = self.path(home)
        return [name for name in self.required_files if not (root / name).is_file()]

    def is_available(self, home: str | Path | None = None) -> bool:
        return self.embedded or (self.path(home).is_dir() and not self.missing_files(home))

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "subdir": self.subdir,
            "layout": self.layout,
            "embedded": self.embedded,
            "presets": list(self.presets),
        }


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add ``info`` to the dataset registry (re-registering the same name replaces it)."""
    _DATASETS[info.name] = info
    return info


def dataset_info(name: str) -> DatasetInfo:
    if name not in _DATASETS:
        raise DatasetMissingError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def list_datasets() -> list[DatasetInfo]:
    return [_DATASETS[name] for name in sorted(_DATASETS)]


def require_dataset(info: DatasetInfo, home: str | Path | None = None, *, verify: bool = False) -> Path:
    """Return the dataset folder, or raise a message saying where the data comes from and its layout."""
    if info.embedded:
        return info.path(home)
    root = info.path(home)
    missing = info.missing_files(home) if root.is_dir() else list(info.required_files) or [""]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetMissingError(
            f"dataset {info.name!r} not found under {root} (missing: {shown or root}). "
            f"Source: {info.source}. Expected layout: {info.layout or 'see the method docs'}. "
            "Set REPROLAB_DATA or pass --data to the folder that holds it." + fetch_hint(info.name)
        )
    if verify:
        for relative, expected in info.sha256.items():
            actual = sha256_file(root / relative)
            if actual != expected:
                raise DataError(f"{root / relative}: sha256 {actual} does not match the expected {expected}")
    return root


T = TypeVar("T")


def available_datasets(
    checks: Mapping[str, Callable[[], T]], *, note: Callable[[str], None], alone: bool = True
) -> dict[str, T]:
    """Run every named dataset's check (e.g. :func:`require_dataset`) before any training; return the present ones.

    An absent one (:class:`DatasetMissingError`) is skipped with one warning line on stderr and ``note`` (the run's
    report), so its claims are `not evaluated`; when none is present and nothing else would run (``alone``), the
    first absent one's message is the run's one error line (issue 20)."""
    present: dict[str, T] = {}
    missing: list[tuple[str, DatasetMissingError]] = []
    for name, check in checks.items():
        try:
            present[name] = check()
        except DatasetMissingError as error:
            missing.append((name, error))
    if missing and not present and alone:
        raise missing[0][1]
    for name, error in missing:
        note(f"Skipped dataset {name}: {error}")
        print(f"warning: skipped dataset {name}: {error}", file=sys.stderr)
    return present


def fetch_hint(name: str) -> str:
    """`` Or fetch it: reprolab data fetch NAME`` when ``name`` is a fetchable dataset, else ``""``."""
    from reprolab.core.fetch import fetchable

    return f" Or fetch it: reprolab data fetch {name}" if fetchable(name) is not None else ""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, destination: str | Path, *, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` and keep it only if its sha256 matches.

    An existing file with the right checksum is reused; a wrong one is never overwritten silently.
    """
    destination = Path(destination)
    if destination.is_file():
        if sha256_file(destination) == sha256:
            return destination
        raise DataError(f"{destination}: exists with a different sha256 than expected; remove it to re-download")
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_file(tmp_name)
        if actual != sha256:
            raise DataError(f"{url}: downloaded sha256 {actual} does not match the expected {sha256}")
        os.replace(tmp_name, destination)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return destination


def _check_member_name(name: str, archive: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive}: refusing member with an absolute path: {name!r}")
    if ".." in pure.parts:
        raise DataError(f"{archive}: refusing member that escapes the target folder: {name!r}")


def _check_member_target(name: str, archive: Path, destination: Path) -> None:
    """Refuse a member whose path, with the symlinks already present in ``destination`` followed, leaves it."""
    root = destination.resolve()
    target = (destination / name).resolve()
    if target != root and root not in target.parents:
        raise DataError(f"{archive}: refusing member {name!r}: it would be written outside {destination}")


def safe_extract(archive: str | Path, destination: str | Path) -> list[Path]:
    """Extract a .zip or tar archive into ``destination``, refusing unsafe members; return extracted files."""
    archive = Path(archive)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        return _extract(archive, destination)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{archive}: corrupt or unreadable archive ({text})") from None


def _extract(archive: Path, destination: Path) -> list[Path]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            for name in names:
                _check_member_name(name, archive)
                _check_member_target(name, archive, destination)
            zf.extractall(destination)
        return _existing(destination, names)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _check_member_name(member.name, archive)
                if member.issym() or member.islnk() or member.isdev():
                    raise DataError(f"{archive}: refusing link or device member {member.name!r}")
                _check_member_target(member.name, archive, destination)
            try:
                tf.extractall(destination, members=members, filter="data")
            except TypeError:  # Python without extraction filters; members were checked above
                tf.extractall(destination, members=members)
        return _existing(destination, [m.name for m in members])
    raise DataError(f"{archive}: not a zip or tar archive")


def _existing(root: Path, names: Iterable[str]) -> list[Path]:
    return [root / name for name in names if (root / name).is_file()]
