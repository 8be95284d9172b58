"""Every documented source example loads, and source config mistakes are reported well."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load
from monitor.sources.registry import KINDS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "sources.md"
EXAMPLE = REPO / "config.example.toml"


def with_secret_files(text: str, tmp_path: Path) -> str:
    """Point every ``/run/secrets/…`` path at a real file holding a placeholder secret."""
    def replace(match: re.Match[str]) -> str:
        target = tmp_path / match.group(1)
        target.write_text("sqlite:///warehouse.db\n" if "url" in match.group(1) else "s3cret\n")
        return str(target)

    return re.sub(r"/run/secrets/([\w.-]+)", replace, text)


def doc_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)


@pytest.mark.parametrize("example", doc_examples(),
                         ids=lambda text: re.search(r'name = "([^"]+)"', text).group(1))  # type: ignore[union-attr]
def test_it_loads_every_example_in_the_sources_guide(example: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(with_secret_files(example, tmp_path))
    settings = load(config, environ={})
    [source] = settings.sources
    assert source.kind in KINDS


def test_it_documents_every_kind_with_an_example() -> None:
    kinds = {re.search(r'kind = "(\w+)"', text).group(1)  # type: ignore[union-attr]
             for text in doc_examples()}
    assert kinds == set(KINDS)


def test_it_ships_a_valid_commented_example_of_every_kind_in_the_example_config(
        tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    section = text[text.index("# --- Data sources"):]
    blocks = re.findall(r"^# \[\[sources\]\]\n(?:^# .*\n?)+", section, re.MULTILINE)
    live = "\n".join("[[sources]]\n" + "\n".join(line[2:] for line in block.splitlines()[1:])
                     for block in blocks)
    config = tmp_path / "config.toml"
    config.write_text(with_secret_files(live, tmp_path))
    settings = load(config, environ={})
    assert sorted({s.kind for s in settings.sources}) == sorted(KINDS)


def test_it_reports_every_source_mistake_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[sources]]\n'                                  # 1
        'name = "a"\n'                                   # 2
        'kind = "csv"\n'                                 # 3
        'path = "a.csv"\n'                               # 4
        'url = "https://example.org/a.csv"\n'           # 5
        'indicator = "x"\n'                              # 6
        '\n'                                             # 7
        '[[sources]]\n'                                  # 8
        'name = "b"\n'                                   # 9
        'kind = "police_uk"\n'                           # 10
        'force = "metropolitan"\n'                       # 11
        'cron = "0 25 * * *"\n'                          # 12
        '\n'                                             # 13
        '[[sources]]\n'                                  # 14
        'name = "c"\n'                                   # 15
        'kind = "ftp"\n')                                # 16
    with pytest.raises(ConfigError) as caught:
        load(config, environ={})
    shown = [str(p).replace(str(config), "config.toml") for p in caught.value.problems]
    assert len(shown) == 3
    assert shown[0] == ("config.toml:1: sources[0]: give exactly one of path (a local file) or "
                        "url (http or https)")
    assert shown[1].startswith("config.toml:12: sources[1].cron: '0 25 * * *' is not a valid "
                               "cron expression")
    assert shown[2] == ("config.toml:14: sources[2]: Input tag 'ftp' found using 'kind' does "
                        "not match any of the expected tags: 'csv', 'json', 'sql', 'prometheus', "
                        "'police_uk', 'milestones'")
