"""Reports that open anywhere: figure links relative to the report, CSVs, and one self-contained HTML page."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reprolab.core.html import write_html_report

PROBE = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  const tables = document.querySelectorAll("table").length;
  document.body.insertAdjacentHTML("beforeend",
    `<p id="probe">images=${images.length} decoded=${decoded} tables=${tables}</p>`);
});</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _probe_in_browser(page: Path, tmp_path: Path) -> dict[str, int]:
    """Open ``page`` in headless Chromium and count images, decoded images and tables after load."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
               f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probed.as_uri()]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r"images=(\d+) decoded=(\d+) tables=(\d+)", dom)
    assert found, dom[-2000:]
    return dict(zip(("images", "decoded", "tables"), map(int, found.groups())))


@pytest.fixture(scope="module")
def reproduce_folder(tmp_path_factory):
    """A tiny two-seed reproduce of demi, written from another working directory than the report's."""
    from reprolab.core.config import parse_set_options
    from reprolab.core.runner import reproduce

    out = tmp_path_factory.mktemp("reproduce")
    settings = ["steps=15", "eval_batches=2", "true_mis=[2,20]", "ks=[2]", "digits=false", "hidden=16"]
    reproduce(["demi"], seeds=2, out=out, overrides=parse_set_options(settings))
    return out


def test_markdown_figure_links_resolve_from_the_report_folder(reproduce_folder):
    report = (reproduce_folder / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links, "the reproduce report shows figures"
    for link in links:
        assert not Path(link).is_absolute() and (reproduce_folder / link).is_file(), link


def test_claims_and_metrics_csv_sit_beside_summary_json(reproduce_folder):
    claims = list(csv.DictReader((reproduce_folder / "claims.csv").open()))
    assert claims and {row["verdict"] for row in claims} <= {"pass", "fail", "inconclusive", "not evaluated"}
    assert {row["kind"] for row in claims} <= {"empirical", "structural", "extension"}
    metrics = list(csv.DictReader((reproduce_folder / "metrics.csv").open()))
    assert any(row["metric"] == "log_n" and row["n"] == "2" for row in metrics)


def test_html_page_is_self_contained(reproduce_folder, tmp_path):
    page = write_html_report(reproduce_folder)
    text = page.read_text()
    assert "<table>" in text and "data:image/png;base64," in text
    assert 'src="demi/' not in text  # every figure embedded, none linked


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (.ci/run installs it)")
def test_html_page_renders_in_a_browser(reproduce_folder, tmp_path):
    page = write_html_report(reproduce_folder)
    moved = tmp_path / "elsewhere" / "report.html"  # opened away from the run folder: nothing may be linked
    moved.parent.mkdir()
    shutil.copy(page, moved)
    probe = _probe_in_browser(moved, tmp_path)
    assert probe["images"] > 0 and probe["decoded"] == probe["images"] and probe["tables"] >= 2
