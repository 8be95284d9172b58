"""The HTTP fetcher every network source shares.

One :meth:`HttpFetcher.get`:

1. refuses hosts outside ``allowed_hosts`` (redirects included);
2. sends auth, custom headers and the validators of the last success
   (``If-None-Match`` / ``If-Modified-Since``), so unchanged data costs a 304;
3. streams the body, failing as soon as it passes ``max_bytes``;
4. retries connection errors, timeouts, truncated bodies, 5xx and 429 with exponential
   backoff (``backoff`` doubled per retry up to ``max_backoff``, ± 20 % jitter), waiting
   what ``Retry-After`` asks when the server says;
5. raises :class:`FetchError` (``retryable`` says whether a later poll may succeed)
   with the source, the URL and what to do.

TLS certificates are verified unless ``verify_tls = false``. Sleeping and randomness are
injected, so tests run without waiting. :class:`HttpOptions` (with the ``auth`` models)
is the config every network source kind mixes in; httpx is imported when a fetcher is
made, not with the config (every command validates it).
"""

from __future__ import annotations

import fnmatch
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr

from monitor import __version__
from monitor.configtypes import Duration, Section
from monitor.errors import FetchError, PayloadError
from monitor.retry import backoff, retry_after_seconds
from monitor.store.sourcestate import Validators

if TYPE_CHECKING:
    import httpx

JITTER = 0.2  # each retry waits its doubled delay ± 20 %, so failed polls do not retry in step
MIB = 1024 * 1024


class BearerAuth(Section):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(Section):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class HeaderAuth(Section):
    """A secret sent in a header of your choice, e.g. ``X-API-Key``."""

    type: Literal["header"]
    header: str = Field(pattern=r"^[A-Za-z0-9-]{1,100}$")
    value: SecretStr


Auth = Annotated[BearerAuth | BasicAuth | HeaderAuth, Field(discriminator="type")]


class HttpOptions(Section):
    """How a source is fetched over HTTP(S)."""

    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=0, le=10)
    backoff: Duration = 1.0
    max_backoff: Duration = 60.0
    max_retry_after: Duration = 300.0
    max_bytes: int = Field(default=100 * MIB, ge=1024)
    verify_tls: bool = True
    ca_bundle: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    user_agent: str = "kpi-monitor"


@dataclass(frozen=True)
class HttpResponse:
    """A fetched response: status, lower-cased headers, the whole body, new validators."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    not_modified: bool = False
    attempts: int = 1
    validators: Validators = field(default_factory=Validators)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def host_allowed(host: str, allowed: Collection[str]) -> bool:
    """Return True when ``allowed`` is empty or ``host`` matches one entry (``*.`` wildcards)."""
    host = host.lower().rstrip(".")
    return not allowed or any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allowed)


def _shown(url: httpx.URL | str) -> str:
    """The URL without credentials or query (either may carry secrets), for messages."""
    import httpx

    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


class _TooLarge(Exception):
    pass


class HttpFetcher:
    """An HTTP client for one source's poll. Use as a context manager."""

    def __init__(self, options: HttpOptions, *, source: str, now: Callable[[], datetime],
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        import httpx

        self.options = options
        self.source = source
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._now = now
        self.requests = 0
        verify: Any = options.ca_bundle if options.verify_tls and options.ca_bundle \
            else options.verify_tls
        headers = {"User-Agent": f"{options.user_agent}/{__version__}", **options.headers}
        auth: httpx.Auth | None = None
        if isinstance(options.auth, BearerAuth):
            headers["Authorization"] = f"Bearer {options.auth.token.get_secret_value()}"
        elif isinstance(options.auth, HeaderAuth):
            headers[options.auth.header] = options.auth.value.get_secret_value()
        elif isinstance(options.auth, BasicAuth):
            auth = httpx.BasicAuth(options.auth.username, options.auth.password.get_secret_value())
        self._client = httpx.Client(
            timeout=httpx.Timeout(options.timeout), verify=verify, headers=headers, auth=auth,
            follow_redirects=True, max_redirects=5, trust_env=False,
            event_hooks={"request": [self._check_host]},
        )

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _check_host(self, request: httpx.Request) -> None:
        if not host_allowed(request.url.host, self.options.allowed_hosts):
            raise FetchError(
                f"source {self.source!r}: host {request.url.host!r} is not in allowed_hosts "
                f"({', '.join(self.options.allowed_hosts)}); add it if this URL is right",
                retryable=False)

    def get(self, url: str, *, params: Mapping[str, str] | None = None,
            validators: Validators | None = None, accept: str = "*/*",
            expect: Collection[int] = ()) -> HttpResponse:
        """Return the response to ``GET url``, retrying what is worth retrying.

        A status in ``expect`` is returned as is (for APIs that answer "too much" with
        503). Returns ``not_modified`` for a 304. Raises FetchError for transport
        failures and other statuses once retries are spent, PayloadError when the body
        exceeds ``max_bytes``.
        """
        return self._request("GET", url, params, None, validators, accept, expect)

    def post_form(self, url: str, form: Mapping[str, str], *, accept: str = "*/*",
                  expect: Collection[int] = ()) -> HttpResponse:
        """Return the response to a form ``POST`` (for queries too long for a URL).

        Retries and raises like :meth:`get`.
        """
        return self._request("POST", url, None, form, None, accept, expect)

    def _request(self, method: str, url: str, params: Mapping[str, str] | None,
                 form: Mapping[str, str] | None, validators: Validators | None, accept: str,
                 expect: Collection[int]) -> HttpResponse:
        import httpx

        options = self.options
        headers = {"Accept": accept}
        if validators is not None:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified
        attempts = options.retries + 1
        last_error = ""
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                response = self._once(method, url, params, form, headers, attempt)
            except httpx.TimeoutException:
                last_error = f"no answer within {options.timeout:g}s (timeout)"
            except httpx.RemoteProtocolError as exc:
                last_error = f"the connection broke mid-response (truncated body?): {exc}"
            except httpx.TransportError as exc:
                last_error = f"cannot connect: {exc}"
            else:
                status = response.status
                if status in expect or 200 <= status < 300 or status == 304:
                    return response
                detail = response.body[:200].decode("utf-8", "replace").strip()
                last_error = f"HTTP {status}" + (f": {detail}" if detail else "")
                if status != 429 and status < 500:
                    raise FetchError(
                        f"source {self.source!r}: {method} {_shown(url)}: {last_error}; "
                        f"{_advice(status)}", retryable=False)
                wait = retry_after_seconds(response.headers.get("retry-after"), self._now())
                if wait is not None and wait > options.max_retry_after:
                    raise FetchError(
                        f"source {self.source!r}: {method} {_shown(url)}: {last_error}; the server "
                        f"asks to wait {wait:g}s, more than max_retry_after "
                        f"({options.max_retry_after:g}s); the next poll will try again",
                        retryable=True, retry_after=wait)
            if attempt < attempts:
                self._sleep(wait if wait is not None else
                            backoff(attempt, options.backoff, options.max_backoff,
                                    jitter=JITTER, rng=self._rng))
        raise FetchError(f"source {self.source!r}: {method} {_shown(url)}: {last_error} "
                         f"(after {attempts} attempt{'s' if attempts != 1 else ''})",
                         retryable=True)

    def _once(self, method: str, url: str, params: Mapping[str, str] | None,
              form: Mapping[str, str] | None, headers: dict[str, str],
              attempt: int) -> HttpResponse:
        self.requests += 1
        limit = self.options.max_bytes
        with self._client.stream(method, url, params=params, data=form,
                                 headers=headers) as response:
            lowered = {k.lower(): v for k, v in response.headers.items()}
            if response.status_code == 304:
                return HttpResponse(str(response.url), 304, lowered, not_modified=True,
                                    attempts=attempt)
            declared = lowered.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise self._too_large(url, int(declared))
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._too_large(url, size)
                chunks.append(chunk)
        return HttpResponse(
            str(response.url), response.status_code, lowered, b"".join(chunks),
            attempts=attempt,
            validators=Validators(etag=lowered.get("etag", ""),
                                  last_modified=lowered.get("last-modified", "")))

    def _too_large(self, url: str, size: int) -> PayloadError:
        return PayloadError(f"source {self.source!r}: GET {_shown(url)}: the response is larger "
                            f"than max_bytes ({self.options.max_bytes:,} bytes; got at least "
                            f"{size:,}); raise max_bytes if this size is expected")


def _advice(status: int) -> str:
    if status in (401, 403):
        return "check the credentials in auth (token, password) and that they are not expired"
    if status == 404:
        return "check the URL; the resource does not exist"
    return "the request is refused; check the URL and the query parameters"
