"""``monitor poll``, ``monitor ingest`` and ``monitor sources`` on a real config and store."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.sources.sourcekit import LONDON_2008


def printed(text: str) -> list[str]:
    """The command's own lines, without the log lines that share stderr."""
    return [line for line in text.splitlines() if not line.startswith("ts=")]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    kpis = tmp_path / "kpis.csv"
    kpis.write_text("indicator,force,period,value\nrobbery,Met,2008-04,5\n"
                    "robbery,Met,2008-05,six\nrobbery,Met,2008-06,7\n")
    path = tmp_path / "config.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"

[[sources]]
name = "kpis"
kind = "csv"
path = "{kpis}"
indicator_column = "indicator"
labels = {{force = "force"}}

[[sources]]
name = "london"
kind = "csv"
url = "http://127.0.0.1:9/none.csv"
retries = 0
layout = "wide"
indicator = "recorded_crime"
labels = {{borough = "Borough", major = "Major Category", minor = "Minor Category"}}
""")
    return path


def test_it_polls_a_source_and_prints_what_was_stored(config: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poll", "--config", str(config), "kpis"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "kpis: partial: 3 rows, 2 observations: 2 new, 0 revised, 0 updated, 0 unchanged, "
        "1 new series, 1 row rejected",
        "  rejected: source 'kpis' row 3: value: 'six' is not a number",
    ]
    assert main(["poll", "--config", str(config), "kpis"]) == 0
    assert capsys.readouterr().out == "kpis: unchanged\n"


def test_it_backfills_a_source_from_a_file(config: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    part = tmp_path / "london-part.csv"
    part.write_text("\n".join(LONDON_2008.read_text().splitlines()[:11]) + "\n")
    assert main(["ingest", "--config", str(config), "--source", "london", str(part)]) == 0
    assert capsys.readouterr().out == (
        "london: success: 10 rows, 1,080 observations: 1,080 new, 0 revised, 0 updated, "
        "0 unchanged, 10 new series, 0 rows rejected\n")


def test_it_exits_1_when_a_poll_fails_and_lists_health(config: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poll", "--config", str(config), "london"]) == 1
    [line] = printed(capsys.readouterr().err)
    assert line.startswith(
        "london: failed: source 'london': GET http://127.0.0.1:9/none.csv: cannot connect:")
    assert main(["sources", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "kpis\tcsv\tevery 3600s\tnever polled\tlast success -"
    assert lines[1] == "london\tcsv\tevery 3600s\tfailing (1 in a row)\tlast success -"
    assert lines[2].startswith("\tlast error: source 'london': GET")


def test_it_names_the_configured_sources_when_one_is_unknown(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poll", "--config", str(config), "kpi"]) == 1
    assert printed(capsys.readouterr().err) == [
        "error: no source named 'kpi' (configured: kpis, london)"]


def test_it_exits_1_for_a_file_with_a_header_and_no_rows(config: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    header = tmp_path / "header-only.csv"
    header.write_text("indicator,force,period,value\n")
    assert main(["ingest", "--config", str(config), "--source", "kpis", str(header)]) == 1
    [line] = printed(capsys.readouterr().err)
    assert line == (
        f"kpis: empty: source 'kpis': {header}: empty payload: no rows (a header alone, an "
        "empty list or an empty result); nothing is stored and the previous data is kept (1 "
        "empty payload in a row; from 3 in a row (empty_payloads) each counts as a failed "
        "poll)")


def test_it_prints_each_rejected_row_on_one_line_with_control_characters_escaped(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    forged = tmp_path / "forged.csv"
    forged.write_text('indicator,force,period,value\n'
                      'robbery,"Barnet\r\nBcc: x@y",2008-05,1\n'
                      'robbery,"Barnet\r\nBcc: x@y",2008-05,2\n'
                      'robbery,Met,2008-04,5\nrobbery,Met,2008-05,6\nrobbery,Met,2008-06,7\n',
                      newline="")
    assert main(["ingest", "--config", str(config), "--source", "kpis", str(forged)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1:] == [
        "  rejected: source 'kpis' row 3: period: the same series and period as row 5 "
        "(force=Barnet\\r\\nBcc: x@y, indicator=robbery, period=24100); all of them are "
        "rejected",
        "  rejected: source 'kpis' row 5: period: the same series and period as row 3 "
        "(force=Barnet\\r\\nBcc: x@y, indicator=robbery, period=24100); all of them are "
        "rejected"]
    assert "\r" not in out
