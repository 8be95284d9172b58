"""Security properties of the code and the defaults: no dynamic code from text, the
token compared in constant time, mutations behind the token, reads protectable, the
default bind on loopback, and mail headers that refuse CR/LF."""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.app import App
from monitor.errors import ConfigError
from monitor.http import context
from monitor.settings import Settings, load
from tests.conftest import free_port
from tests.reliability.rig import REPO

MONITOR = REPO / "monitor"
TOKEN = "code-token-41c7a9"

# Calls that run or load code from text. None is allowed anywhere in monitor/.
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__", "execfile"}
FORBIDDEN_ATTRIBUTES = {("pickle", "loads"), ("pickle", "load"), ("marshal", "loads"),
                        ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                        ("os", "system"), ("os", "popen"), ("dill", "loads"),
                        ("shelve", "open")}


def calls(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, what) for every forbidden call or ``shell=True`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
            yield node.lineno, f"{func.id}()"
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                (func.value.id, func.attr) in FORBIDDEN_ATTRIBUTES:
            yield node.lineno, f"{func.value.id}.{func.attr}()"
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                               and keyword.value.value is False):
                yield node.lineno, "shell=True"


def test_no_code_is_evaluated_from_operator_or_data_text() -> None:
    found = [f"{path.relative_to(REPO)}:{line}: {what}"
             for path in sorted(MONITOR.rglob("*.py")) for line, what in calls(path)]
    assert found == []
    # The checker itself finds what it looks for.
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "bad.py"
        sample.write_text("import yaml, subprocess\neval(x)\nyaml.load(t)\n"
                          "subprocess.run(c, shell=True)\n")
        assert [w for _, w in calls(sample)] == ["eval()", "yaml.load()", "shell=True"]


def test_the_token_is_compared_in_constant_time() -> None:
    tree = ast.parse(Path(context.__file__).read_text())
    function = next(n for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef) and n.name == "token_ok")
    compared = [n for n in ast.walk(function) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and n.func.attr == "compare_digest"]
    equalities = [n for n in ast.walk(function) if isinstance(n, ast.Compare)
                  and any(isinstance(op, ast.Eq | ast.NotEq) for op in n.ops)
                  and "expected" in ast.unparse(n)]
    assert len(compared) == 1 and equalities == []


def test_the_default_bind_is_loopback() -> None:
    assert Settings().server.listen.startswith("127.0.0.1:")
    example = load(REPO / "config.example.toml", environ={})
    assert example.server.host == "127.0.0.1"


@pytest.mark.parametrize(("settings", "problem"), [
    pytest.param({"headers": {"X-Team": "perf\r\nBcc: victim@example.org"}},
                 "header X-Team: the value cannot contain a line break (CR or LF)",
                 id="header-value"),
    pytest.param({"headers": {"X-Team\r\nBcc": "x"}}, "is not one", id="header-name"),
    pytest.param({"from": "kpi@example.org\nBcc: victim@example.org"},
                 "cannot contain a line break (CR or LF)", id="from"),
    pytest.param({"to": ["ops@example.org\r\nBcc: victim@example.org"]},
                 "is not one email address", id="to"),
    pytest.param({"hello": "mx\r\nRSET"}, "cannot contain a line break", id="hello"),
])
def test_mail_headers_in_the_config_refuse_cr_lf(tmp_path: Path, settings: dict[str, object],
                                                 problem: str) -> None:
    email = {"to": ["ops@example.org"], "host": "127.0.0.1", **settings}
    lines = "\n".join(f"{k} = {toml(v)}" for k, v in email.items())
    path = tmp_path / "config.toml"
    path.write_text(f'[[notify.receivers]]\nname = "ops"\n[[notify.receivers.email]]\n{lines}\n')
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{path}:")


def toml(value: object) -> str:
    import json

    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}"
                               for k, v in value.items()) + "}"
    return json.dumps(value)


# --- the token at the HTTP API ------------------------------------------------------------


def running(tmp: Path, server: str) -> Iterator[str]:
    port = free_port()
    config = tmp / "config.toml"
    config.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
{server}
[store]
url = "sqlite:///{tmp / 'monitor.db'}"
[rules]
paths = []
""")
    app = App(load(config, environ={}), config)
    app.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.stop()


@pytest.fixture
def open_reads(tmp_path: Path) -> Iterator[str]:
    yield from running(tmp_path, f'api_token = "{TOKEN}"')


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[str]:
    yield from running(tmp_path, f'api_token = "{TOKEN}"\nprotect_reads = true')


@pytest.fixture
def no_token(tmp_path: Path) -> Iterator[str]:
    yield from running(tmp_path, "")


SILENCE = {"matchers": [{"name": "alertname", "value": "X"}], "duration": "1h",
           "created_by": "ops", "comment": "maintenance"}


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param({}, 401, id="none"),
    pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, 401, id="longer"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, 401, id="prefix"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="other-scheme"),
    pytest.param({"Authorization": f"bearer {TOKEN}"}, 201, id="scheme-any-case"),
    pytest.param({"Authorization": f"Bearer {TOKEN}"}, 201, id="right"),
])
def test_mutations_need_the_bearer_token(open_reads: str, headers: dict[str, str],
                                         status: int) -> None:
    created = httpx.post(f"{open_reads}/api/v1/silences", json=SILENCE, headers=headers)
    assert created.status_code == status, created.text
    if status == 401:
        assert created.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in created.text
    assert httpx.get(f"{open_reads}/api/v1/silences").status_code == 200  # reads are open


def test_without_a_configured_token_every_mutation_is_refused(no_token: str) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer None"}):
        assert httpx.post(f"{no_token}/api/v1/silences", json=SILENCE,
                          headers=headers).status_code == 401
        assert httpx.post(f"{no_token}/-/reload", headers=headers).status_code == 401


def test_reads_can_be_protected_too(protected: str) -> None:
    for path in ("/api/v1/alerts", "/api/v1/sources", "/alerts", "/scorecard"):
        assert httpx.get(f"{protected}{path}").status_code == 401, path
        assert httpx.get(f"{protected}{path}",
                         headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # Scrapes and health checks stay open.
    for path in ("/metrics", "/-/healthy", "/-/ready"):
        assert httpx.get(f"{protected}{path}").status_code == 200, path
