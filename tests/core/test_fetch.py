"""Fetchable datasets: pinned URLs + sha256, tested offline against a local HTTP server (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reprolab.cli import app
from reprolab.core.data import DatasetInfo, require_dataset, sha256_file
from reprolab.core.errors import DatasetMissingError
from reprolab.core.fetch import FETCHABLE, Fetchable

REPO, COMMIT = "someone/data", "0" * 40


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server over ``tmp_path/served`` laid out as ``<repo>/<commit>/<path>``; the mirror points at it."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REPROLAB_FETCH_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}/{{repo}}/{{commit}}/{{path}}")
    try:
        yield served / REPO / COMMIT
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


def test_fetch_writes_the_verified_layout_and_reuses_it(server, tmp_path, monkeypatch):
    files = {"a/train.txt": b"1\t2\t3\n", "a/test.txt": b"4\t5\t6\n"}
    for name, data in files.items():
        _publish(server, f"data/{name}", data)
    entry = Fetchable("toy", "toyset", REPO, COMMIT, "a toy set", {k: _sha(v) for k, v in files.items()}, "data/")
    monkeypatch.setitem(FETCHABLE, "toy", entry)
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(home)])
    assert result.exit_code == 0, result.output
    assert "toyset/a/train.txt" in result.output and "(6 bytes)" in result.output
    assert {p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()} == {"toyset/a/train.txt",
                                                                                        "toyset/a/test.txt"}
    assert (home / "toyset" / "a" / "train.txt").read_bytes() == files["a/train.txt"]
    (server / "data" / "a" / "train.txt").unlink()  # present with the right hash: not downloaded again
    assert CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(home)]).exit_code == 0
    listed = CliRunner().invoke(app, ["data", "list", "--dest", str(home)])
    assert listed.exit_code == 0 and any(line.startswith("toy ") and "present" in line
                                         for line in listed.output.splitlines())


def test_a_wrong_hash_is_refused_in_one_line_and_leaves_nothing(server, tmp_path, monkeypatch):
    _publish(server, "x.bin", b"tampered")
    monkeypatch.setitem(FETCHABLE, "toy", Fetchable("toy", "toyset", REPO, COMMIT, "", {"x.bin": _sha(b"original")}))
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(home)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "does not match the expected" in result.output
    assert not [p for p in home.rglob("*") if p.is_file()]  # no file, no .part left behind


def test_unreachable_source_and_unknown_name_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_FETCH_MIRROR", "http://127.0.0.1:9/{repo}/{commit}/{path}")  # discard port
    monkeypatch.setitem(FETCHABLE, "toy", Fetchable("toy", "toyset", REPO, COMMIT, "", {"x.bin": _sha(b"x")}))
    result = CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "download failed" in result.output and len(result.output.splitlines()) == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    result = CliRunner().invoke(app, ["data", "fetch", "nope", "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "unknown fetchable dataset 'nope'" in result.output


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_members_are_kept_only_when_their_hash_matches(server, tmp_path, monkeypatch, kind):
    members = {"SET/SET_A.txt": b"1, 2\n", "SET/README.txt": b"read me\n", "__MACOSX/SET/._SET_A.txt": b"junk"}
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    _publish(server, "data/SET.bin", buffer.getvalue())
    wanted = {"SET/SET_A.txt": _sha(members["SET/SET_A.txt"]), "SET/README.txt": _sha(b"read me\n")}
    entry = Fetchable("toy", "sets", REPO, COMMIT, "", wanted, archive="data/SET.bin",
                      archive_sha256=_sha(buffer.getvalue()))  # fmt: skip
    monkeypatch.setitem(FETCHABLE, "toy", entry)
    result = CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(tmp_path / "home")])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "home").as_posix() for p in (tmp_path / "home").rglob("*") if p.is_file())
    assert written == ["sets/SET/README.txt", "sets/SET/SET_A.txt"]  # no archive, no junk, no scratch folder left
    assert (tmp_path / "home" / "sets" / "SET" / "SET_A.txt").read_bytes() == b"1, 2\n"
    wanted["SET/README.txt"] = _sha(b"another readme")  # a member whose bytes are not the pinned ones
    monkeypatch.setitem(FETCHABLE, "toy", Fetchable("toy", "sets", REPO, COMMIT, "", wanted, archive="data/SET.bin",
                                                    archive_sha256=_sha(buffer.getvalue())))  # fmt: skip
    result = CliRunner().invoke(app, ["data", "fetch", "toy", "--dest", str(tmp_path / "other")])
    assert result.exit_code == 2 and "member SET/README.txt has sha256" in result.output
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file() and p.name == "README.txt"]


def test_the_pinned_hashes_match_the_shared_data(real_data):
    """Every fetchable file already in the data home has the sha256 the registry pins (the provenance check)."""
    home = real_data(".")
    checked = 0
    for entry in FETCHABLE.values():
        for relative, digest in entry.files.items():
            path = home / entry.folder / relative
            if path.is_file():
                assert sha256_file(path) == digest, path
                checked += 1
    assert checked > 100


def test_a_missing_fetchable_dataset_names_the_fetch_command(tmp_path):
    info = DatasetInfo("planetoid-cora", "Cora", "kimiyoung/planetoid", "planetoid", required_files=("ind.cora.x",))
    with pytest.raises(DatasetMissingError, match="reprolab data fetch planetoid-cora"):
        require_dataset(info, tmp_path)
    other = DatasetInfo("ECSSD", "saliency", "elsewhere", "ECSSD", required_files=("x",))
    with pytest.raises(DatasetMissingError) as caught:
        require_dataset(other, tmp_path)
    assert "data fetch" not in str(caught.value) and os.sep in str(caught.value)
