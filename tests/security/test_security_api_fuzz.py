"""The HTTP API fuzzed from its own OpenAPI description (schemathesis): a real daemon on
the bundled example, every operation, valid and invalid requests, with and without the
bearer token — and never a server error.

Each run (operation, valid or invalid, with or without the token) draws from its own
seed, derived from ``MONITOR_FUZZ_SEED``, so the token and no-token runs do not repeat
each other's requests; a request identical to one already sent (method, URL, headers and
body) is not sent or counted again, so the tally is of distinct requests."""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import free_port
from tests.property.tally import tally
from tests.reliability.processes import start_daemon, stop, wait_for_text
from tests.reliability.rig import copy_example

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token-0f3b9e"
EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("MONITOR_FUZZ_SEED", "20080731"))
STATUSES: Counter[tuple[str, int]] = Counter()
SENT: set[str] = set()  # every distinct request sent, as a curl command line


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = copy_example(tmp_path_factory.mktemp("fuzz"))
    port = free_port()
    config = workdir / "config.toml"
    config.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
api_token = "{TOKEN}"
[store]
url = "sqlite:///{workdir / 'monitor.db'}"
[rules]
paths = ["{workdir / 'rules'}"]
as_of = "2008-07"
watch = false
[[sources]]
name = "mps-2008-09"
kind = "csv"
path = "{workdir / 'data' / 'indicators.csv'}"
indicator_column = "indicator"
labels = {{force = "force"}}
denominator_column = "denominator"
provisional_column = "provisional"
[[sources]]
name = "ct_plan"
kind = "milestones"
path = "{workdir / 'data' / 'ct-milestones.yaml'}"
""")
    log = workdir / "daemon.log"
    proc = start_daemon(config, workdir, log)
    try:
        assert wait_for_text(log, 'msg="daemon started"', proc=proc, timeout=60), log.read_text()
        assert wait_for_text(log, "alerts changed state", proc=proc), log.read_text()
        yield f"http://127.0.0.1:{port}"
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "Traceback" not in output, output[-4000:]


def operations(base: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(base: str, operation: schemathesis.APIOperation, mode: GenerationMode,
         headers: dict[str, str]) -> int:
    """Generate ``EXAMPLES`` requests for ``operation`` and send each distinct one;
    fail on any 5xx. Return how many were sent.

    Raises hypothesis' Unsatisfiable when the operation has nothing to make invalid.
    """
    name = f"{operation.method.upper()} {operation.path}"
    run_seed = zlib.crc32(f"{SEED} {name} {mode.value} {sorted(headers)}".encode())
    sent = 0

    @seed(run_seed)
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        request = case.as_curl_command(headers=headers, base_url=base)
        if request in SENT:
            return  # the same request again: neither sent nor counted
        SENT.add(request)
        sent += 1
        tally(f"API fuzz (schemathesis, {mode.value}): {name}")
        response = case.call(base_url=base, headers=headers, timeout=30)
        STATUSES[(name, response.status_code)] += 1
        assert response.status_code < 500, (request, response.text[:500])

    run()
    return sent


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("authorized", [True, False], ids=["token", "no-token"])
def test_no_request_from_the_openapi_description_causes_a_server_error(
        daemon: str, mode: GenerationMode, authorized: bool) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if authorized else {}
    fuzzed = 0
    sent = 0
    for operation in operations(daemon):
        if operation.path == "/-/reload" and authorized:
            continue  # reloading hundreds of times adds time, not coverage
        try:
            sent += fuzz(daemon, operation, mode, headers)
        except Unsatisfiable:
            # An operation without parameters or body has nothing to make invalid.
            assert mode is GenerationMode.NEGATIVE, operation.path
            continue
        fuzzed += 1
    assert fuzzed >= (10 if mode is GenerationMode.POSITIVE else 5)
    assert sent >= fuzzed  # each operation sent at least one request of its own
    # The daemon is still well.
    assert httpx.get(f"{daemon}/-/ready", timeout=10).status_code == 200


def test_every_mutating_operation_refuses_a_request_without_the_token(daemon: str) -> None:
    for operation in operations(daemon):
        if operation.method.upper() in ("GET", "HEAD", "OPTIONS"):
            continue
        path = operation.path.replace("{silence_id}", "x")
        response = httpx.request(operation.method.upper(), f"{daemon}{path}", json={},
                                 timeout=10)
        assert response.status_code == 401, (operation.path, response.text)
        assert response.headers.get("www-authenticate") == "Bearer"


def test_the_description_lists_the_bearer_token_scheme_or_says_so(daemon: str) -> None:
    description = httpx.get(f"{daemon}/api/openapi.json", timeout=10).json()
    text = description["info"]["description"]
    assert "Authorization: Bearer" in text
