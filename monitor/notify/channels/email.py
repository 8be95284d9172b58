"""Email over SMTP: STARTTLS or implicit TLS, optional login, text + HTML.

Headers are built with the standard library's ``email`` package from values with CR
and LF removed, so no value from data can add a header. ``Message-ID`` is stable
across retries of one notification (a receiver can drop a duplicate), and every
update of a group after the first carries ``In-Reply-To``/``References`` to the
group's first message, so mail clients thread them.
"""

from __future__ import annotations

import mimetypes
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

from monitor.errors import DeliveryError
from monitor.notify.channels.base import Channel, Message, clip
from monitor.notify.config import EmailConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import fallback_text, fallback_title

_BREAKS = re.compile(r"[\r\n\x00]+")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,76}$")
RESERVED = {"from", "to", "subject", "date", "message-id", "in-reply-to", "references",
            "content-type", "mime-version", "content-transfer-encoding", "cc", "bcc"}


def one_line(value: str) -> str:
    """Return ``value`` with line breaks (and NULs) replaced by spaces: header-safe."""
    return _BREAKS.sub(" ", value).strip()


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip(" >") or "kpi-monitor.localdomain"
    return re.sub(r"[^A-Za-z0-9.-]", "", domain) or "kpi-monitor.localdomain"


def message_id(local: str, domain: str) -> str:
    return f"<{re.sub(r'[^A-Za-z0-9._-]', '', local)}@{domain}>"


class EmailChannel(Channel):
    kind: ClassVar[str] = "email"
    parts: ClassVar[dict[str, tuple[str, str]]] = {
        "subject": ("text", "email_subject"),
        "text": ("text", "email_text"),
        "html": ("html", "email_html"),
    }
    config: EmailConfig

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        from markupsafe import escape

        text = fallback_text(notification)
        return {"subject": fallback_title(notification), "text": text,
                "html": f"<pre>{escape(text)}</pre>"}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        cfg = self.config
        domain = _domain(cfg.from_)
        msg = EmailMessage()
        msg["Subject"] = clip(one_line(str(parts.get("subject", ""))), 250) or "kpi-monitor"
        msg["From"] = one_line(cfg.from_)
        msg["To"] = ", ".join(one_line(a) for a in cfg.to)
        msg["Date"] = format_datetime(self.clock.now())
        msg["Message-ID"] = message_id(notification.message_id, domain)
        if not notification.is_thread_start:
            root = message_id(notification.thread_id, domain)
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-KPI-Monitor-Receiver"] = one_line(notification.receiver)
        for name, value in cfg.headers.items():
            if _HEADER_NAME.match(name) and name.lower() not in RESERVED:
                msg[name] = one_line(value)
        msg.set_content(str(parts.get("text", "")) + "\n")
        msg.add_alternative(str(parts.get("html", "")), subtype="html")
        preview = msg.as_string()
        if notification.report is not None:
            self._attach(msg, notification.report.files)
        return Message(msg, preview)

    def _attach(self, msg: EmailMessage, files: tuple[str, ...]) -> None:
        """Attach a performance pack's files, read now from the report's directory.

        Raises DeliveryError (retryable: a directory on a mount may come back) when one
        cannot be read.
        """
        for name in files:
            path = Path(name)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise self.error(f"cannot read the pack {path} to attach it: "
                                 f"{exc.strerror or exc}; regenerate it with `monitor report`"
                                 " and resend", retryable=True) from None
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            maintype, _, subtype = kind.partition("/")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        cfg = self.config
        msg: EmailMessage = message.body
        context = ssl.create_default_context(cafile=cfg.tls_ca_file)
        if not cfg.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        sender = Address(addr_spec=_addr_spec(cfg.from_)).addr_spec
        try:
            smtp: smtplib.SMTP
            if cfg.tls:
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, local_hostname=cfg.hello,
                                        timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.hello,
                                    timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if cfg.starttls:
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if cfg.username:
                    password = cfg.password.get_secret_value() if cfg.password else ""
                    smtp.login(cfg.username, password)
                refused = smtp.send_message(msg, from_addr=sender, to_addrs=list(cfg.to))
        except smtplib.SMTPAuthenticationError as exc:
            raise self.error(f"SMTP authentication failed ({exc.smtp_code}); check username "
                             "and password", retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise self.error(f"the SMTP server does not support what the config asks "
                             f"({exc}); check starttls/tls and username", retryable=False) \
                from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{k}: {v[0]}" for k, v in exc.recipients.items())
            retryable = all(400 <= v[0] < 500 for v in exc.recipients.values())
            raise self.error(f"every recipient was refused ({codes})", retryable=retryable) \
                from None
        except smtplib.SMTPResponseException as exc:
            detail = exc.smtp_error.decode("utf-8", "replace") \
                if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise self.error(f"SMTP error {exc.smtp_code}: {one_line(detail)}",
                             retryable=exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise self.error(f"the SMTP server's certificate is not trusted ({exc.verify_message});"
                             " set tls_ca_file to its CA", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self.error(f"cannot talk to {cfg.host}:{cfg.port}: "
                             f"{type(exc).__name__}: {exc}", retryable=True) from None
        if refused:
            return SendResult("delivered", "some recipients refused: "
                              + ", ".join(sorted(refused)))
        return SendResult()


def _addr_spec(text: str) -> str:
    found = re.search(r"<([^<>]+)>", text)
    return (found.group(1) if found else text).strip()


__all__ = ["DeliveryError", "EmailChannel", "message_id", "one_line"]
