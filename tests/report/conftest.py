"""Fixtures of the pack tests: the bundled example polled into a store once per session,
and the pack of July 2008 generated once in each format through the CLI, beside the
``monitor eval --at 2008-07 --format json`` it must agree with."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.clock import FixedClock
from tests.conftest import needs
from tests.examples.daemons import example_config

GENERATED = datetime(2008, 8, 7, 9, 0, tzinfo=UTC)  # the 5th working day of August 2008


@dataclass(frozen=True)
class Packs:
    """The example's config and the July 2008 pack in each format, with eval's JSON."""

    config: Path
    folder: Path
    eval_json: dict[str, Any]
    pdf: Path
    xlsx: Path
    html: Path

    def pdf_text(self) -> str:
        return subprocess.run(["pdftotext", "-layout", str(self.pdf), "-"], check=True,
                              capture_output=True, text=True).stdout

    def page_texts(self) -> list[str]:
        """Each page's text (pdftotext separates pages with a form feed)."""
        text = subprocess.run(["pdftotext", str(self.pdf), "-"], check=True,
                              capture_output=True, text=True).stdout
        return text.split("\f")[:-1]

    def page_image(self, page: int, dpi: int = 50) -> Path:
        """Render page ``page`` (1-based) with pdftoppm; return the PNG."""
        stem = self.folder / f"page-{page}-{dpi}"
        png = stem.with_suffix(".png")
        if not png.exists():
            subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page),
                            "-png", "-singlefile", str(self.pdf), str(stem)], check=True)
        return png


def run(argv: list[str], clock: FixedClock | None = None) -> tuple[int, str]:
    """Run ``monitor ARGV`` in this process; return the exit code and standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv, clock=clock or FixedClock(GENERATED))
    return code, out.getvalue()


@pytest.fixture(scope="session")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    for tool in ("pdftotext", "pdftoppm"):
        if shutil.which(tool) is None:
            needs(f"{tool} is not installed (poppler-utils: bash .ci/system-packages)")
    folder = tmp_path_factory.mktemp("pack")
    config = example_config("mps", folder)
    code, _ = run(["poll", "--all", "--config", str(config)])
    assert code == 0
    code, printed = run(["eval", "--config", str(config), "--at", "2008-07",
                         "--format", "json"])
    assert code == 0
    files = {}
    for fmt in ("pdf", "xlsx", "html"):
        files[fmt] = folder / f"pack-2008-07.{fmt}"
        code, _ = run(["report", "--config", str(config), "--at", "2008-07", "--format", fmt,
                       "--out", str(files[fmt])])
        assert code == 0
    return Packs(config, folder, json.loads(printed), files["pdf"], files["xlsx"],
                 files["html"])
