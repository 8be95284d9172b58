"""Fixtures for the notification tests: a real SMTP server (aiosmtpd), a self-signed
certificate (openssl), and a real Alertmanager process."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port, needs
from tests.notify.loopback import LoopbackReceiver, validate_am_webhook

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
SMTP_USER, SMTP_PASSWORD = "kpi", "smtp-Pa55-word-9d2e"


@dataclass
class SmtpHandler:
    """Records every message; answers DATA with scripted codes (default 250)."""

    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        raw = envelope.original_content or envelope.content
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(raw)))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
        and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: SmtpHandler


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def _server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
    return context


def _start(handler: SmtpHandler, **kwargs: Any) -> tuple[Controller, SmtpServer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, SmtpServer("127.0.0.1", port, handler)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback."""
    controller, server = _start(SmtpHandler())
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(tls_files: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """An SMTP server that requires STARTTLS and then a login."""
    controller, server = _start(SmtpHandler(), tls_context=_server_context(tls_files),
                                require_starttls=True, authenticator=_authenticator,
                                auth_require_tls=True, auth_required=True)
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def implicit_tls_server(tls_files: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """An SMTP server speaking TLS from the first byte (as on port 465)."""
    # aiosmtpd only counts STARTTLS as TLS; this connection is TLS from the start.
    controller, server = _start(SmtpHandler(), ssl_context=_server_context(tls_files),
                                authenticator=_authenticator, auth_required=True,
                                auth_require_tls=False)
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class AlertmanagerProcess:
    url: str
    process: subprocess.Popen[bytes]

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerProcess]:
    """A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port."""
    binary = shutil.which("prometheus-alertmanager") or (
        str(ALERTMANAGER) if ALERTMANAGER.exists() else None)
    if binary is None:
        needs(f"{ALERTMANAGER} is not installed (Debian package prometheus-alertmanager)")
    folder = tmp_path_factory.mktemp("alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port, cluster = free_port(), free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster}", "--cluster.advertise-address="
         f"127.0.0.1:{cluster}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"alertmanager exited with {process.returncode}: {err[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("alertmanager did not become ready within 20 s")
    try:
        yield AlertmanagerProcess(url, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()




@pytest.fixture
def hook() -> Iterator[LoopbackReceiver]:
    """A loopback webhook receiver that validates Alertmanager's v4 payload."""
    receiver = LoopbackReceiver(validate_am_webhook)
    try:
        yield receiver
    finally:
        receiver.close()
