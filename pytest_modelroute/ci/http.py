"""A small JSON-over-HTTP client on urllib: what the comment command needs and no more.

Transient failures (connection errors, 502/503/504) are retried twice. Nothing here
prints: errors carry the status and the server's message, never the request's headers.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final

from .. import __version__

USER_AGENT: Final = f"pytest-modelroute/{__version__}"
RETRY_STATUS: Final = (502, 503, 504)
#: seconds before the first retry; doubled for the next
BACKOFF_S = 1.0
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')


@dataclass
class Response:
    status: int
    headers: Message
    data: Any


class HttpError(Exception):
    """The server answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, headers: Message | None = None) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status
        self.message = message
        self.headers = headers if headers is not None else Message()


def request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
    *,
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float | None = None,
) -> Response:
    """Send ``body`` as JSON and decode the JSON answer; raises ``HttpError``."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **headers}
    if data is not None:
        headers["Content-Type"] = "application/json"
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return Response(resp.status, resp.headers, json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            error = HttpError(exc.code, _message(exc), exc.headers)
            if exc.code not in RETRY_STATUS:
                raise error from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            error = HttpError(0, f"cannot reach {_origin(url)}: {reason}")
        except ValueError as exc:  # a body that is not JSON
            raise HttpError(0, f"{_origin(url)} answered with something not JSON: {exc}") from None
        if attempt < retries:
            time.sleep((BACKOFF_S if backoff is None else backoff) * 2**attempt)
    raise error


def next_link(headers: Message) -> str | None:
    """The ``rel="next"`` URL of an RFC 8288 ``Link`` header (GitHub's and GitLab's
    pagination), else None."""
    for value in headers.get_all("Link") or []:
        for url, rel in _LINK.findall(value):
            if "next" in rel.split():
                return url
    return None


def _message(exc: urllib.error.HTTPError) -> str:
    """The server's own explanation: GitHub's and GitLab's JSON ``message``, else text."""
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        raw = ""
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw.strip()[:300] or exc.reason or "no message"
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error_description") or payload.get("error")
        return str(message or exc.reason)[:300]
    return raw[:300]


def _origin(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def user_name(url: str, headers: dict[str, str], key: str) -> str | None:
    """The token's user as ``GET url`` names it (``key`` of the answer), None when the API
    will not say (a GitHub workflow token may not ask)."""
    try:
        found = request("GET", url, headers).data
    except HttpError:
        return None
    return (found or {}).get(key) or None
