from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

from reprolab.core.data import DatasetInfo, data_home, download, require_dataset, safe_extract
from reprolab.core.errors import DataError, DatasetMissingError


def _zip_with(tmp_path, name):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/file.txt", "fine")
        zf.writestr(name, "bad")
    return path


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/passwd", "a/../../escape.txt"])
def test_zip_members_escaping_the_target_are_refused(tmp_path, member):
    with pytest.raises(DataError, match="refusing member"):
        safe_extract(_zip_with(tmp_path, member), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_tar_symlink_members_are_refused(tmp_path):
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="link or device"):
        safe_extract(path, tmp_path / "out")


def test_safe_archive_extracts(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        data = b"1 2\n"
        info = tarfile.TarInfo("NAME/NAME_A.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    files = safe_extract(path, tmp_path / "out")
    assert [f.read_bytes() for f in files] == [b"1 2\n"]


def test_missing_dataset_says_where_it_comes_from(tmp_path):
    info = DatasetInfo(
        name="toy",
        description="a toy",
        source="https://example.org/toy.zip",
        subdir="toy",
        required_files=("train.txt",),
        layout="toy/train.txt with tab-separated triples",
    )
    with pytest.raises(DatasetMissingError, match=r"example\.org/toy\.zip.*toy/train\.txt with tab"):
        require_dataset(info, tmp_path)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "train.txt").write_text("a\tb\tc\n")
    assert require_dataset(info, tmp_path) == tmp_path / "toy"


def test_data_home_prefers_override_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REPROLAB_DATA", str(tmp_path / "env"))
    assert data_home() == tmp_path / "env"
    assert data_home(tmp_path / "cli") == tmp_path / "cli"


def test_download_keeps_only_verified_files(tmp_path):
    # A local file:// source: no network is touched.
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    with pytest.raises(DataError, match="does not match"):
        download(source.as_uri(), tmp_path / "dl" / "bad.bin", sha256="0" * 64)
    assert not (tmp_path / "dl" / "bad.bin").exists()
    assert download(source.as_uri(), tmp_path / "dl" / "ok.bin", sha256=good).read_bytes() == b"payload"


def test_available_datasets_skips_absent_ones_beside_others_and_fails_alone(capsys):
    from reprolab.core.data import available_datasets
    from reprolab.core.errors import DatasetMissingError

    def absent() -> str:
        raise DatasetMissingError("dataset 'b' not found under /x/b (missing: train.txt)")

    notes: list[str] = []
    assert available_datasets({"a": lambda: "folder-a", "b": absent}, note=notes.append) == {"a": "folder-a"}
    message = "dataset 'b' not found under /x/b (missing: train.txt)"
    assert capsys.readouterr().err == f"warning: skipped dataset b: {message}\n"
    assert notes == ["Skipped dataset b: dataset 'b' not found under /x/b (missing: train.txt)"]
    assert available_datasets({"b": absent}, note=notes.append, alone=False) == {}  # other work runs
    with pytest.raises(DatasetMissingError, match="dataset 'b'"):
        available_datasets({"b": absent}, note=notes.append)
