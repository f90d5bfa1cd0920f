"""The viewer's HTTP server: read-only, loopback by default, every request authorised by token.

Routes are one table (:data:`ROUTES`): path -> what answers it. Every response carries the
headers of :data:`SECURITY_HEADERS` (a Content-Security-Policy that allows nothing from
anywhere but the page's own origin, no framing, no referrer, no caching). A request is refused
before it is routed unless:

- on loopback, its ``Host`` header names the address the server is bound to (so a web page
  elsewhere cannot reach it through DNS rebinding), and
- it carries the access token: ``?token=`` on the page's URL, then the ``X-Elspeth-Token``
  header the page's script sends on every call (compared in constant time). The page's own
  script and style sheet (:data:`_ASSETS`), which hold nothing of the run, are the exception.

Only GET and HEAD are answered; nothing a request says can change a file.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from elspeth.security import SecurityLevel
from elspeth.view import _query
from elspeth.view._errors import ViewError
from elspeth.view._run import RunOutputs
from elspeth.view._table import SideBySide

log = logging.getLogger("elspeth.view")

TOKEN_HEADER: Final = "X-Elspeth-Token"  # noqa: S105 - a header's name, not a token
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_PAGE: Final = ("index.html", "text/html; charset=utf-8")
_ASSETS: Final[Mapping[str, tuple[str, str]]] = {
    "/view.js": ("view.js", "text/javascript; charset=utf-8"),
    "/view.css": ("view.css", "text/css; charset=utf-8"),
}
"""The page's script and style sheet: the package's own files, holding nothing of a run, so
served without the token (a browser does not send the page's token header when it loads them)."""
MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True)
class Viewed:
    """What the server shows: the runs, their side-by-side table and their joint level."""

    runs: tuple[RunOutputs, ...]
    view: SideBySide
    level: SecurityLevel

    @property
    def banner(self) -> str:
        from elspeth.reports._marking import MARKINGS

        return MARKINGS[self.level].text


Answer = tuple[HTTPStatus, str, bytes]
Route = Callable[[Viewed, Mapping[str, str]], Answer]


def _json(value: Any) -> Answer:
    body = json.dumps(value, ensure_ascii=True, allow_nan=False, default=str).encode("ascii")
    return HTTPStatus.OK, "application/json", body


def _summary(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    from elspeth.reports._marking import MARKINGS

    marking = MARKINGS[viewed.level]
    view = viewed.view
    return _json(
        {
            "banner": marking.text,
            "colours": {"background": marking.background, "foreground": marking.foreground},
            "level": viewed.level.name,
            "runs": [
                {
                    "run_id": run.run_id,
                    "suite": run.suite,
                    "status": run.status,
                    "reason": run.reason,
                    "level": run.level.name,
                    "experiments": list(run.experiments),
                    "baseline": run.baseline,
                    "plan": [dict(decision) for decision in run.plan],
                }
                for run in viewed.runs
            ],
            "experiments": list(view.experiments),
            "baseline": view.baseline,
            "key": list(view.key),
            "inputs": list(view.inputs),
            "criteria": list(view.criteria),
            "graders": list(view.graders),
            "scores": list(view.scores),
            "rows": view.table.num_rows,
            "statistics": _query.statistics(view),
            "comparisons": _query.forest(viewed.runs),
        }
    )


def _rows(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    query = _query.Query.from_params(params, viewed.view)
    return _json(_query.page(viewed.view, query, viewed.runs))


def _key(params: Mapping[str, str]) -> tuple[int, int]:
    return (
        _query.whole_number(params, "row", -1, 0, 10**12),
        _query.whole_number(params, "repeat", 0, 0, 10**6),
    )


def _detail(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    _only(params, "row", "repeat")
    row, repeat = _key(params)
    if row < 0:
        raise ViewError("row is required")
    return _json(_query.detail(viewed.view, viewed.runs, row, repeat))


def _diff(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    _only(params, "row", "repeat", "experiment", "criterion")
    row, repeat = _key(params)
    experiment, criterion = params.get("experiment", ""), params.get("criterion", "")
    return _json(_query.diff(viewed.view, row, repeat, experiment, criterion))


def _histogram(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    _only(params, "score")
    return _json(_query.histogram(viewed.view, params.get("score", "")))


def _scatter(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    _only(params, "score", "variant")
    return _json(_query.scatter(viewed.view, params.get("score", ""), params.get("variant", "")))


def _csv(viewed: Viewed, params: Mapping[str, str]) -> Answer:
    query = _query.Query.from_params(params, viewed.view)
    return HTTPStatus.OK, "text/csv; charset=utf-8", _query.filtered_csv(viewed.view, query)


def _only(params: Mapping[str, str], *names: str) -> None:
    unknown = sorted(set(params) - set(names) - {"token"})
    if unknown:
        raise ViewError(f"unknown parameter {unknown[0]!r}; known: {', '.join(names)}")


ROUTES: Final[Mapping[str, Route]] = {
    "/api/summary": _summary,
    "/api/rows": _rows,
    "/api/row": _detail,
    "/api/diff": _diff,
    "/api/histogram": _histogram,
    "/api/scatter": _scatter,
    "/api/rows.csv": _csv,
}
"""Every data route; the page itself is ``/`` and its two assets are :data:`_ASSETS`."""


def _asset(name: str) -> bytes:
    return resources.files("elspeth.view").joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    server_version = "elspeth-view"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        try:
            params = dict(parse_qsl(url.query, keep_blank_values=True, strict_parsing=False))
        except ValueError:
            params = {}
        if not self.server.allows_host(self.headers.get("Host", "")):
            self._send(HTTPStatus.FORBIDDEN, "text/plain", b"unexpected Host header\n", head)
            return
        if url.path in _ASSETS:
            name, content_type = _ASSETS[url.path]
            self._send(HTTPStatus.OK, content_type, _asset(name), head)
            return
        offered = self.headers.get(TOKEN_HEADER) or params.get("token", "")
        if not hmac.compare_digest(offered.encode(), self.server.token.encode()):
            self._send(
                HTTPStatus.FORBIDDEN, "text/plain", b"a valid access token is needed\n", head
            )
            return
        if url.path == "/":
            self._send(HTTPStatus.OK, _PAGE[1], _asset(_PAGE[0]), head)
            return
        route = ROUTES.get(url.path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", head)
            return
        try:
            status, content_type, body = route(self.server.viewed, params)
        except ViewError as error:
            status, content_type = HTTPStatus.BAD_REQUEST, "application/json"
            body = json.dumps({"error": str(error)}).encode("ascii")
        except Exception:  # the page gets an answer; the operator's log gets the traceback
            log.exception("%s failed", url.path)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
            body = b'{"error": "the viewer could not answer this request; see its log"}'
        self._send(status, content_type, body, head)

    def end_headers(self) -> None:
        # Here, so that http.server's own answers (501 for a POST, 400 for a bad request line)
        # carry them too.
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("the browser went away before %s was sent", urlsplit(self.path).path)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds the token on the first visit: log the method and path only.
        log.debug("%s %s", self.command, urlsplit(self.path).path)


class ViewServer(ThreadingHTTPServer):
    """Serves ``viewed`` on ``host``:``port`` (0: any free port) with ``token``."""

    daemon_threads = True

    def __init__(self, viewed: Viewed, host: str, port: int, token: str) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), _Handler)
        self.viewed = viewed
        self.token = token
        bound_host, bound_port = self.server_address[:2]
        names = {str(bound_host), host}
        # On loopback the Host header must name this server (against DNS rebinding). Bound to
        # another address, clients name it as they reach it (an address, a DNS name): the
        # operator's own token is the guard there.
        self._hosts: frozenset[str] | None = None
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
            self._hosts = frozenset(f"{name}:{bound_port}" for name in names)
        for run in viewed.runs:  # the drill-down's index, built while the first pages load
            threading.Thread(
                target=run.row_events.prepare, name="elspeth-view-index", daemon=True
            ).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback to stderr; a failed request is logged as
        # one line, without its URL (which may hold the token).
        log.warning("a request from %s failed", client_address[0], exc_info=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def allows_host(self, header: str) -> bool:
        return self._hosts is None or header.lower() in self._hosts

    def url(self) -> str:
        host = str(self.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={self.token}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def choose_token(host: str, given: str | None) -> str:
    """The access token: ``given`` (at least 16 characters) or, on a loopback address only, a
    new random one. Any other address without a token the operator set is refused."""
    if given is not None:
        if len(given) < MIN_TOKEN_LENGTH or not given.isprintable() or not given.isascii():
            raise ViewError(
                f"the access token must be at least {MIN_TOKEN_LENGTH} printable ASCII characters"
            )
        return given
    if not is_loopback(host):
        raise ViewError(
            f"--host {host} is not a loopback address: set an access token of your own "
            "(ELSPETH_VIEW_TOKEN) to serve it there"
        )
    return secrets.token_urlsafe(32)


def viewed_runs(runs: Sequence[RunOutputs], max_level: SecurityLevel | None) -> Viewed:
    """The runs ready to serve; a run above ``max_level`` is refused, naming its level."""
    from elspeth.view._table import side_by_side

    for run in runs:
        if max_level is not None and run.level > max_level:
            raise ViewError(
                f"{run.directory}: the run is {run.level.name}, above --max-level "
                f"{max_level.name}; not served"
            )
    level = max(run.level for run in runs)
    return Viewed(tuple(runs), side_by_side(runs), level)
