"""A small OpenAI-compatible chat completions server on loopback, for tests and benchmarks.

It answers ``POST /v1/chat/completions`` and the Azure form
``POST /openai/deployments/{deployment}/chat/completions`` on 127.0.0.1 with an ephemeral port,
and can be slow (fixed latency), fail at random (5xx at ``error_rate``), answer failures in set
proportions (:class:`FailureMix`: 500, 400, 429 with ``Retry-After``, malformed JSON, hangs that
last until the server stops), or follow a per-request script (:meth:`OpenAIServer.script`: 429
with ``Retry-After``, any status, malformed bodies, delays). It counts requests and each failure
kind it served, records each request's path, headers and JSON body, and tracks the most requests
it saw in flight at once.

In a test (server on a background thread; stops on exit, at the latest after ``lifetime``)::

    with OpenAIServer(ServerConfig(latency=0.01)) as server:
        server.script(Reply.error(429, retry_after="1"))
        ... OpenAIClient(base_url=server.base_url, ...) ...
        assert server.stats.request_count == 2

As a separate process (benchmarks: its CPU stays off the client's event loop)::

    python tests/support/openai_server.py --latency 0.05 --server-error 0.2 --hang 0.05 --seed 7

prints ``PORT <n>``, serves until its standard input closes (or ``--lifetime`` passes), then
prints ``STATS <json>``. :func:`serve_in_subprocess` wraps that. Only stdlib and aiohttp are
imported, so the file runs by path.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import enum
import hashlib
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` None means a normal completion; ``delay`` None means the
    configured latency."""

    status: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float | None = None

    @classmethod
    def ok(cls, delay: float | None = None) -> Reply:
        return cls(delay=delay)

    @classmethod
    def error(
        cls, status: int, *, retry_after: str | None = None, body: bytes | None = None
    ) -> Reply:
        headers = () if retry_after is None else (("Retry-After", retry_after),)
        error = {"error": {"message": "scripted failure", "type": "scripted", "code": str(status)}}
        return cls(status, body if body is not None else json.dumps(error).encode(), headers)

    @classmethod
    def malformed(cls, body: bytes = b'{"choices": [{"message": {"content": ') -> Reply:
        return cls(200, body)


class FailureKind(enum.StrEnum):
    """A failure the server can serve from its :class:`FailureMix`."""

    SERVER_ERROR = "500"
    BAD_REQUEST = "400"
    RATE_LIMITED = "429"
    MALFORMED = "malformed"
    HANG = "hang"


#: FailureMix field of each kind, in the order a draw walks them.
_MIX_FIELDS: Mapping[FailureKind, str] = {
    FailureKind.SERVER_ERROR: "server_error",
    FailureKind.BAD_REQUEST: "bad_request",
    FailureKind.RATE_LIMITED: "rate_limited",
    FailureKind.MALFORMED: "malformed",
    FailureKind.HANG: "hang",
}


@dataclasses.dataclass(frozen=True)
class FailureMix:
    """The share of requests answered with each failure; the rest are normal completions.

    ``server_error``: 500; ``bad_request``: 400; ``rate_limited``: 429 with ``Retry-After:
    retry_after``; ``malformed``: 200 whose body is truncated JSON; ``hang``: no answer until the
    server stops (then 503). Each request draws one number from the server's seeded generator,
    so the n-th request's kind is the same on every run with the same seed.
    """

    server_error: float = 0.0
    bad_request: float = 0.0
    rate_limited: float = 0.0
    malformed: float = 0.0
    hang: float = 0.0
    retry_after: str = "1"

    def __post_init__(self) -> None:
        for kind, name in _MIX_FIELDS.items():
            share = getattr(self, name)
            if isinstance(share, bool) or not isinstance(share, int | float):
                raise TypeError(f"FailureMix.{name} ({kind}) must be a number, not {share!r}")
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"FailureMix.{name} ({kind}) must be in [0, 1], not {share!r}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"FailureMix shares add up to {self.total:g}, more than 1")

    @classmethod
    def of(cls, shares: Mapping[str, float], *, retry_after: str = "1") -> FailureMix:
        """From ``{"500": 0.2, "400": 0.1, "429": 0.1, "malformed": 0.1, "hang": 0.05}`` (a kind's
        value or its field name)."""
        fields: dict[str, float] = {}
        names = {kind.value: name for kind, name in _MIX_FIELDS.items()}
        names.update({name: name for name in _MIX_FIELDS.values()})
        for key, share in shares.items():
            if key not in names:
                raise ValueError(f"unknown failure kind {key!r}; known: {', '.join(names)}")
            fields[names[key]] = share
        return cls(**fields, retry_after=retry_after)

    def share(self, kind: FailureKind) -> float:
        share: float = getattr(self, _MIX_FIELDS[kind])
        return share

    @property
    def total(self) -> float:
        return sum(self.share(kind) for kind in FailureKind)

    def draw(self, number: float) -> FailureKind | None:
        """The kind for a uniform ``number`` in [0, 1), or None for a normal completion."""
        edge = 0.0
        for kind in FailureKind:
            edge += self.share(kind)
            if number < edge:
                return kind
        return None


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """``api_key``: when set, a request whose ``Authorization: Bearer`` or ``api-key`` header
    differs gets 401 with an error body that echoes the key it was sent (as some real services
    half-do), so tests can prove the client never repeats a body's text.

    ``mix``: failures in set proportions (a :class:`FailureMix`, or a mapping for
    :meth:`FailureMix.of`), drawn after ``error_rate``; ``seed`` makes both repeatable."""

    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    seed: int = 0
    api_key: str | None = None
    include_usage: bool = True
    lifetime: float = 300.0
    mix: FailureMix | Mapping[str, float] = FailureMix()

    def __post_init__(self) -> None:
        if not isinstance(self.mix, FailureMix):
            object.__setattr__(self, "mix", FailureMix.of(self.mix))

    @property
    def failure_mix(self) -> FailureMix:
        assert isinstance(self.mix, FailureMix)  # normalised in __post_init__
        return self.mix


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    started: float
    """``time.monotonic()`` when the request arrived."""
    wall_time: float
    """``time.time()`` when the request arrived: comparable with another process's clock."""


class ServerStats:
    """Counters shared between the server's loop and the test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.request_count = 0
        self.in_flight = 0
        self.max_concurrent = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: collections.Counter[FailureKind] = collections.Counter()
        """Each :class:`FailureKind` served from the mix (a hang counts when it starts)."""
        self.requests: list[RecordedRequest] = []

    def enter(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self.request_count += 1
            self.in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self.in_flight)
            self.requests.append(recorded)

    def served(self, kind: FailureKind) -> None:
        with self._lock:
            self.failures[kind] += 1

    def leave(self, status: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self.statuses[status] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "request_count": self.request_count,
                "max_concurrent": self.max_concurrent,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "failures": {kind.value: self.failures[kind] for kind in FailureKind},
            }


def prompt_of(payload: Any) -> str:
    """Every message's text of a request body, joined."""
    messages = payload.get("messages", []) if isinstance(payload, dict) else []
    return "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


def completion_body(
    payload: Any, *, include_usage: bool, responder: Callable[[str], str] | None = None
) -> bytes:
    """A deterministic chat completion for a request body: ``responder(prompt)`` as its text,
    or by default a JSON score picked by a hash of the prompt."""
    prompt = prompt_of(payload)
    digest = hashlib.sha256(prompt.encode()).digest()
    content = (
        json.dumps({"score": digest[0] % 5 + 1, "rationale": "loopback answer"})
        if responder is None
        else responder(prompt)
    )
    body: dict[str, Any] = {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "model": payload.get("model", "loopback") if isinstance(payload, dict) else "loopback",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if include_usage:
        body["usage"] = {
            "prompt_tokens": max(1, len(prompt) // 4),
            "completion_tokens": max(1, len(content) // 4),
            "total_tokens": max(1, len(prompt) // 4) + max(1, len(content) // 4),
        }
    return json.dumps(body).encode()


def grade_reply(grades: Sequence[str]) -> Callable[[str], str]:
    """A judge's reply: one of ``grades`` picked by a hash of the prompt."""

    def reply(prompt: str) -> str:
        grade = grades[hashlib.sha256(prompt.encode()).digest()[0] % len(grades)]
        return f"The answer was compared with the reference.\nGRADE: {grade}"

    return reply


class OpenAIServer:
    """The server on a background thread with its own event loop."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.stats = ServerStats()
        self._script: collections.deque[Reply] = collections.deque()
        self._script_lock = threading.Lock()
        self._random = random.Random(self.config.seed)
        self._mix = self.config.failure_mix
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._responder: Callable[[str], str] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        """The origin, e.g. for Azure's ``endpoint`` setting."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (with ``/v1``)."""
        return f"{self.endpoint}/v1"

    def respond_with(self, responder: Callable[[str], str]) -> None:
        """Answer every normal completion with ``responder(prompt)`` (e.g. a judge's grade
        chosen by which row the prompt is for) instead of a JSON score."""
        self._responder = responder

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order; then behave as configured."""
        with self._script_lock:
            self._script.extend(replies)

    def _next_reply(self) -> Reply | FailureKind:
        with self._script_lock:
            if self._script:
                return self._script.popleft()
        if self.config.error_rate and self._random.random() < self.config.error_rate:
            return Reply.error(self.config.error_status)
        if self._mix.total:
            kind = self._mix.draw(self._random.random())
            if kind is not None:
                self.stats.served(kind)
                if kind is FailureKind.HANG:
                    return kind
                return self._failure_reply(kind)
        return Reply()

    def _failure_reply(self, kind: FailureKind) -> Reply:
        if kind is FailureKind.SERVER_ERROR:
            return Reply.error(500)
        if kind is FailureKind.BAD_REQUEST:
            return Reply.error(400)
        if kind is FailureKind.RATE_LIMITED:
            return Reply.error(429, retry_after=self._mix.retry_after)
        return Reply.malformed()

    async def _hang(self) -> Reply:
        """No answer until the server stops; then 503, so shutdown never waits on a hang."""
        assert self._stop is not None
        await self._stop.wait()
        return Reply.error(503, body=b'{"error": {"message": "server stopping"}}')

    def _authorised(self, request: web.Request) -> tuple[bool, str]:
        expected = self.config.api_key
        if expected is None:
            return True, ""
        sent = request.headers.get("api-key") or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        return sent == expected, sent

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        self.stats.enter(
            RecordedRequest(
                request.path,
                dict(request.query),
                dict(request.headers),
                payload,
                time.monotonic(),
                time.time(),
            )
        )
        status = 500
        try:
            chosen = self._next_reply()
            reply = await self._hang() if chosen is FailureKind.HANG else chosen
            assert isinstance(reply, Reply)
            authorised, sent = self._authorised(request)
            if not authorised:
                reply = Reply.error(
                    401,
                    body=json.dumps(
                        {
                            "error": {
                                "message": f"Incorrect API key provided: {sent}",
                                "code": "invalid_api_key",
                            }
                        }
                    ).encode(),
                )
            hung = chosen is FailureKind.HANG
            delay = 0.0 if hung else self.config.latency if reply.delay is None else reply.delay
            if delay:
                await asyncio.sleep(delay)
            body = (
                completion_body(
                    payload, include_usage=self.config.include_usage, responder=self._responder
                )
                if reply.body is None
                else reply.body
            )
            status = reply.status
            return web.Response(
                status=status,
                body=body,
                headers=dict(reply.headers),
                content_type="application/json",
            )
        finally:
            self.stats.leave(status)

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._handle)
        return app

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._application(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.lifetime)
        finally:
            self._stop.set()  # ends every hang, also when the lifetime ran out
            await runner.cleanup()

    def _thread_main(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported to start()
            self._failure = exc
            self._ready.set()

    def start(self) -> OpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._thread_main, args=(sock,), name="openai-test-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"loopback OpenAI server did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"loopback OpenAI server did not stop within {STOP_TIMEOUT} s")

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclasses.dataclass
class SubprocessServer:
    base_url: str
    process: subprocess.Popen[str]
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


def mix_arguments(mix: FailureMix) -> list[str]:
    """The command-line flags of the subprocess form that give ``mix``."""
    arguments = [
        f"--{name.replace('_', '-')}={mix.share(kind)!r}"
        for kind, name in _MIX_FIELDS.items()
        if mix.share(kind)
    ]
    return [*arguments, f"--retry-after={mix.retry_after}"] if arguments else []


@contextlib.contextmanager
def serve_in_subprocess(
    latency: float,
    lifetime: float = 600.0,
    *,
    mix: FailureMix | None = None,
    seed: int = 0,
    grades: Sequence[str] = (),
) -> Iterator[SubprocessServer]:
    """Run the server in its own process; ``stats`` is filled in when the block exits. With
    ``grades``, every completion is a judge's reply ending in ``GRADE: <one of them>``."""
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--latency",
            str(latency),
            "--lifetime",
            str(lifetime),
            "--seed",
            str(seed),
            *mix_arguments(mix or FailureMix()),
            *([f"--grades={','.join(grades)}"] if grades else []),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"loopback server subprocess did not start: {line!r}")
        server = SubprocessServer(f"http://{LOOPBACK}:{int(line.split()[1])}/v1", process)
        yield server
        process.stdin.close()
        for line in process.stdout:
            if line.startswith("STATS "):
                server.stats = json.loads(line[len("STATS ") :])
        process.wait(STOP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


def _main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible loopback test server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    for kind, name in _MIX_FIELDS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=0.0,
            metavar="SHARE",
            help=f"share of requests answered {kind.value}"
            + (" (until the server stops)" if kind is FailureKind.HANG else ""),
        )
    parser.add_argument("--retry-after", default="1", help="Retry-After of the 429s")
    parser.add_argument("--grades", default="", help="answer as a judge: LABEL,LABEL,...")
    args = parser.parse_args()
    mix = FailureMix(
        **{name: getattr(args, name) for name in _MIX_FIELDS.values()},
        retry_after=args.retry_after,
    )
    server = OpenAIServer(
        ServerConfig(
            latency=args.latency,
            error_rate=args.error_rate,
            lifetime=args.lifetime,
            seed=args.seed,
            mix=mix,
        )
    )
    if args.grades:
        server.respond_with(grade_reply(tuple(args.grades.split(","))))
    with server:
        print(f"PORT {server.port}", flush=True)
        # Serve until the parent closes our stdin (or dies) or the lifetime passes.
        reader = threading.Thread(target=sys.stdin.read, daemon=True)
        reader.start()
        reader.join(args.lifetime)
    print(f"STATS {json.dumps(server.stats.as_dict())}", flush=True)


if __name__ == "__main__":
    _main()
