"""The gateway's ASGI application: OpenAI's chat completions API in front of the router.

Raw ASGI, no framework: a request is one dict lookup for its route, one read of its body, one
``create()`` on the process's :class:`~genrouter.AsyncClient`, and one ``send`` per chunk.
One client per worker process, made at lifespan startup and closed at shutdown (so its
connection pool, health and budget are shared by every request of that process, and by
every process through the ``state`` backend when it is Redis).

Streams: ``create(stream=True)`` returns once the first content has arrived, so a failure
before that point is an ordinary HTTP error (status, OpenAI's error body) after invisible
failover. A failure after it cannot be taken back: the stream then ends with one event
``data: {"error": {...}}`` and no ``data: [DONE]``, which the openai SDKs raise as
``APIError`` (docs/gateway.md shows the exact shape). Routes with ``resume = true`` continue
on the next candidate instead, and the client sees one unbroken stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genrouter.errors import GenRouterError, redact
from genrouter.params import CompletionCreateParams
from genrouter.server.auth import Gatekeeper
from genrouter.server.coalesce import HeldEvents, finish, flush_then_finish
from genrouter.server.metrics import Metrics, render
from genrouter.server.settings import GatewayKey, LoadedGateway
from genrouter.server.wire import (
    DONE,
    ApiError,
    chunk_event,
    error_body,
    error_for,
    request_params,
    sse,
    stream_error_event,
)
from genrouter.state.limits import build_limits

if TYPE_CHECKING:
    from collections.abc import Mapping

    from genrouter.client import AsyncClient
    from genrouter.streaming import AsyncChatStream
    from genrouter.types import RouteInfo

__all__ = ["Gateway"]

logger = logging.getLogger("genrouter.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_KNOWN = frozenset(
    {"model", "messages", "stream"}
    | CompletionCreateParams.__required_keys__
    | CompletionCreateParams.__optional_keys__
)
_ROUTE_INFO_HEADER = b"x-genrouter-route-info"
_SNAPSHOT_EVERY_S = 1.0


class _ClientGone(Exception):
    """The caller disconnected before its request body arrived."""


def _header(value: object) -> bytes:
    # Printable ASCII only: a value can never split or end the header block.
    text = str(value)
    if text.isascii() and text.isprintable():  # the usual case, without a pass per character
        return text.encode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in text).encode("ascii")


def route_headers(route: RouteInfo | None) -> list[tuple[bytes, bytes]]:
    """``x-genrouter-*`` response headers: route, model, provider, attempts, cost."""
    if route is None:
        return []
    found = [(b"x-genrouter-route", _header(route.route))]
    if route.model is not None:
        found.append((b"x-genrouter-model", _header(route.model)))
    if route.provider is not None:
        found.append((b"x-genrouter-provider", _header(route.provider)))
    found.append((b"x-genrouter-attempts", _header(len(route.attempts))))
    if route.cost_usd is not None:
        found.append((b"x-genrouter-cost-usd", _header(f"{route.cost_usd:.8f}")))
    return found


def route_json(route: RouteInfo | None) -> Any:
    return None if route is None else route.model_dump(mode="json")


class Gateway:
    """The ASGI app. ``Gateway(load_gateway("gateway.toml"))``; serve with uvicorn.

    ``env`` replaces ``os.environ`` as the source of provider keys; ``metrics_dir`` is where
    worker processes share their metrics (see :mod:`genrouter.server.metrics`).
    """

    def __init__(
        self,
        loaded: LoadedGateway,
        *,
        env: Mapping[str, str] | None = None,
        metrics_dir: str | Path | None = None,
    ) -> None:
        self.settings = loaded.settings
        self.config = loaded.config
        self._env = env
        self.metrics = Metrics()
        self._metrics_dir = Path(metrics_dir) if metrics_dir is not None else None
        self.gate = Gatekeeper(self.settings, build_limits(self.config.state))
        self._client: AsyncClient | None = None
        self._snapshots: asyncio.Task[None] | None = None
        self._cors = frozenset(self.settings.cors_origins)

    # -- lifecycle --------------------------------------------------------------------------

    def client(self) -> AsyncClient:
        """This process's client (made on first use when the server runs no lifespan)."""
        if self._client is None:
            from genrouter.client import AsyncClient

            self._client = AsyncClient(self.config, env=self._env)
        return self._client

    async def startup(self) -> None:
        self.client()
        if self._metrics_dir is not None:
            self._snapshots = asyncio.create_task(self._write_snapshots(self._metrics_dir))

    async def shutdown(self) -> None:
        if self._snapshots is not None:
            self._snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshots
        if self._metrics_dir is not None:
            self.metrics.write_snapshot(self._metrics_dir)
        if self._client is not None:
            await self._client.aclose()
        self.gate.limits.close()

    async def _write_snapshots(self, directory: Path) -> None:
        while True:
            await asyncio.sleep(_SNAPSHOT_EVERY_S)
            self.metrics.write_snapshot(directory)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    text = redact(f"{type(exc).__name__}: {exc}")
                    await send({"type": "lifespan.startup.failed", "message": text})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- dispatch ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = dict(scope["headers"])
        extra = self._cors_headers(headers)
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/v1/"):
            path = path[3:]
        if method == "OPTIONS" and extra:
            await _respond(send, 204, b"", extra + _PREFLIGHT)
            return
        if path == "/chat/completions":
            if method != "POST":
                await _error(send, ApiError(405, "use POST", "invalid_request_error"), extra)
                return
            await self._chat(receive, send, headers, extra)
        elif path in ("/models", "/healthz", "/metrics") and method not in ("GET", "HEAD"):
            await _error(send, ApiError(405, "use GET", "invalid_request_error"), extra)
        elif path == "/models":
            try:
                self.gate.admit(headers.get(b"authorization"))
            except ApiError as exc:
                await _error(send, exc, extra)
                return
            await _respond(send, 200, json.dumps(self.models()).encode(), [_JSON, *extra])
        elif path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}', [_JSON, *extra])
        elif path == "/metrics":
            body = render(self.metrics.combined(self._metrics_dir), self._circuits())
            content_type = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            await _respond(send, 200, body, [content_type, *extra])
        else:
            message = f"no such endpoint: {method} {scope['path']}"
            await _error(send, ApiError(404, message, "invalid_request_error"), extra)

    def _cors_headers(self, headers: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        if not self._cors:
            return []
        origin = headers.get(b"origin")
        if origin is None:
            return []
        if "*" in self._cors:
            return [(b"access-control-allow-origin", b"*")]
        if origin.decode("latin-1") in self._cors:
            return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
        return []

    # -- endpoints --------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: routes, ``auto``, and every usable catalog model."""
        data: list[dict[str, Any]] = [
            {
                "id": "auto",
                "object": "model",
                "created": 0,
                "owned_by": "genrouter",
                "genrouter": {"kind": "auto"},
            }
        ]
        for name, route in sorted(self.config.routes.items()):
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "genrouter",
                    "genrouter": {"kind": "route", "candidates": list(route.candidates)},
                }
            )
        for status in self.client().models():
            if not status.usable:
                continue
            spec = status.spec
            data.append(
                {
                    "id": spec.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": spec.provider,
                    "genrouter": {
                        "kind": "model",
                        "lifecycle": status.lifecycle,
                        "deprecated_on": _date(spec.deprecated_on),
                        "shutdown_on": _date(spec.shutdown_on),
                        "successor": spec.successor,
                    },
                }
            )
        return {"object": "list", "data": data}

    def _circuits(self) -> list[tuple[str, str]]:
        if self._client is None:
            return []
        now = time.monotonic()
        health = self._client.health
        return [(model, breaker.state(now)) for model, breaker in list(health.circuits.items())]

    def _secrets(self) -> list[str]:
        return self.client()._known_secrets()

    async def _chat(
        self,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        started = time.perf_counter()
        key: GatewayKey | None = None
        try:
            key = self.gate.admit(headers.get(b"authorization"))
            body = await self._read_body(receive, headers)
            try:
                data = json.loads(body)
            except ValueError:
                raise ApiError(
                    400, "the request body is not valid JSON", "invalid_request_error"
                ) from None
            params = request_params(data, _KNOWN)
            if key is not None:  # rules can match the tenant; a caller cannot claim another
                tags = params.get("route_metadata")
                tags = dict(tags) if isinstance(tags, dict) else {}
                params["route_metadata"] = {**tags, "tenant": key.tenant}
            want_route = headers.get(_ROUTE_INFO_HEADER, b"").lower() in (b"1", b"true")
            completions = self.client().chat.completions
            streaming = bool(params.get("stream"))
            if streaming:
                params["stream"] = True
                stream: AsyncChatStream = await completions.create(**params)
            else:
                params.pop("stream", None)
                completion = await completions.create(**params)
        except _ClientGone:
            return
        except ApiError as exc:
            self._count_error(exc, key, None, started)
            await _error(send, exc, extra)
            return
        except GenRouterError as exc:
            api = error_for(exc, self._secrets())
            log = logger.warning if api.status >= 500 else logger.debug
            log("genrouter gateway: %s %s", api.status, api.message)
            self._count_error(api, key, getattr(exc, "route", None), started)
            await _error(send, api, extra + route_headers(getattr(exc, "route", None)))
            return
        except Exception as exc:  # a bug: say so without text that could hold a secret
            logger.error("genrouter gateway: internal error %s", type(exc).__name__)
            api = ApiError(500, "internal error in the gateway", "server_error", "internal_error")
            self._count_error(api, key, None, started)
            await _error(send, api, extra)
            return
        if streaming:
            await self._send_stream(stream, receive, send, key, extra, started, want_route)
        else:
            await self._send_completion(completion, send, key, extra, started, want_route)

    async def _read_body(self, receive: Receive, headers: Mapping[bytes, bytes]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _send_completion(
        self,
        completion: Any,
        send: Send,
        key: GatewayKey | None,
        extra: list[tuple[bytes, bytes]],
        started: float,
        want_route: bool,
    ) -> None:
        route: RouteInfo | None = completion.route
        if want_route:
            data = completion.model_dump(mode="json")
            data["genrouter_route"] = route_json(route)
            body = json.dumps(data).encode()
        else:
            body = completion.__pydantic_serializer__.to_json(completion)
        await _respond(send, 200, body, [_JSON, *route_headers(route), *extra])
        self._settle(key, route, 200, started, stream=False)

    async def _send_stream(
        self,
        stream: AsyncChatStream,
        receive: Receive,
        send: Send,
        key: GatewayKey | None,
        extra: list[tuple[bytes, bytes]],
        started: float,
        want_route: bool,
    ) -> None:
        headers = [*_SSE_HEADERS, *route_headers(stream.route), *extra]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.metrics.streams_open += 1
        watch = _DisconnectWatch(receive, stream)
        status = 200
        held = HeldEvents(send)  # events ready together go out in one write
        try:
            await self._relay(stream, held, started, watch)
            tail = DONE
            if want_route:
                tail = _route_event(stream) + DONE
        except GenRouterError as exc:
            api = error_for(exc, self._secrets())
            status = api.status
            logger.warning("genrouter gateway: stream broke: %s", api.message)
            self.metrics.count("genrouter_gateway_errors_total", (("type", api.code or ""),))
            tail = stream_error_event(api)
        except Exception as exc:  # a bug: still never a stream that looks finished
            logger.error("genrouter gateway: internal error in a stream: %s", type(exc).__name__)
            status = 500
            self.metrics.count("genrouter_gateway_errors_total", (("type", "internal_error"),))
            api = ApiError(500, "internal error in the gateway", "server_error", "internal_error")
            tail = stream_error_event(api)
        except asyncio.CancelledError:
            # Shutting down past drain_s: the cut stream still must not look finished.
            cut = ApiError(503, _SHUTDOWN, "server_error", "server_shutdown")
            with contextlib.suppress(Exception):
                body = held.last_body(stream_error_event(cut))
                await send({"type": "http.response.body", "body": body, "more_body": False})
            raise
        finally:
            if watch.gone:
                status = 499  # the caller went away (nginx's code): the stream was closed
            watch.stop()
            self.metrics.streams_open -= 1
            await stream.aclose()
        await send({"type": "http.response.body", "body": held.last_body(tail), "more_body": False})
        self._settle(key, stream.route, status, started, stream=True)

    async def _relay(
        self, stream: AsyncChatStream, held: HeldEvents, started: float, watch: _DisconnectWatch
    ) -> None:
        """Every chunk of *stream* as an SSE event into *held*, written before each wait; the
        caller is watched for going away from the first wait on (for a chunk or for a write)."""
        next_chunk = stream.__anext__
        flush = held.flush
        first = True
        while True:
            # next_or_flush(next_chunk(), flush), with its first step taken here: a chunk that
            # is ready (most of them) costs no coroutine of its own around it.
            step = next_chunk()
            try:
                signal = step.send(None)
            except StopIteration as ready:
                chunk = ready.value
            except StopAsyncIteration:
                return
            else:
                watch.start()
                try:
                    chunk = await flush_then_finish(step, signal, flush)
                except StopAsyncIteration:
                    return
            if held.hold(chunk_event(chunk)) or first:
                write = flush()
                try:
                    signal = write.send(None)
                except StopIteration:
                    pass
                else:
                    watch.start()  # the write waits (a slow reader): watch from now on
                    await finish(write, signal)
                if first:
                    # The first event goes out at once, whatever follows it: the caller's time
                    # to first token never waits for the events behind it.
                    first = False
                    ttft = time.perf_counter() - started
                    self.metrics.observe("genrouter_gateway_ttft_seconds", (), ttft)

    # -- accounting -------------------------------------------------------------------------

    def _settle(
        self,
        key: GatewayKey | None,
        route: RouteInfo | None,
        status: int,
        started: float,
        *,
        stream: bool,
    ) -> None:
        model = (route.model if route is not None else None) or ""
        tenant = key.tenant if key is not None else "local"
        metrics = self.metrics
        labels = (("model", model), ("status", str(status)), ("tenant", tenant))
        metrics.count("genrouter_gateway_requests_total", labels)
        kind = (("stream", "true" if stream else "false"),)
        metrics.observe(
            "genrouter_gateway_request_duration_seconds", kind, time.perf_counter() - started
        )
        if route is None:
            return
        usage = route.usage
        if usage is not None:
            tokens = "genrouter_gateway_tokens_total"
            metrics.count(tokens, (("model", model), ("kind", "prompt")), usage.prompt_tokens)
            metrics.count(
                tokens, (("model", model), ("kind", "completion")), usage.completion_tokens
            )
        if route.cost_usd:
            metrics.count("genrouter_gateway_cost_usd_total", (("model", model),), route.cost_usd)
        self.gate.record(key, route.cost_usd)

    def _count_error(
        self, error: ApiError, key: GatewayKey | None, route: RouteInfo | None, started: float
    ) -> None:
        self.metrics.count("genrouter_gateway_errors_total", (("type", error.code or error.type),))
        self._settle(key, route, error.status, started, stream=False)


_SHUTDOWN = "the gateway shut down before the stream ended (its drain_s ran out)"
_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, x-genrouter-route-info"),
    (b"access-control-max-age", b"600"),
]


def _route_event(stream: AsyncChatStream) -> bytes:
    """The extra last event of a stream whose caller asked for route info."""
    final = stream.get_final_completion()
    event = {
        "id": final.id,
        "object": "chat.completion.chunk",
        "created": final.created,
        "model": final.model,
        "choices": [],
        "genrouter_route": route_json(stream.route),
    }
    return sse(json.dumps(event))


def _date(value: Any) -> str | None:
    return None if value is None else str(value)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than this gateway's limit of {limit} bytes",
        "invalid_request_error",
        "request_too_large",
    )


class _DisconnectWatch:
    """Closes a stream (and so its upstream connection) when the caller goes away.

    The watching task can only run while the relay waits: for the upstream's next chunk, or
    for a write that a slow reader holds up (flow control). So it starts at the relay's first
    wait of either kind, where a caller already gone is found at once (``receive()`` answers
    ``http.disconnect``). A stream that never waits (all its chunks ready in one upstream read,
    every write taken at once) costs no task: one started earlier could not have run during
    it anyway.
    """

    __slots__ = ("_receive", "_stream", "_task", "gone")

    def __init__(self, receive: Receive, stream: AsyncChatStream) -> None:
        self._receive = receive
        self._stream = stream
        self._task: asyncio.Task[None] | None = None
        self.gone = False  # the caller went away and the stream was closed for it

    def start(self) -> None:
        """Watch from now on (once; later calls do nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                await self._stream.aclose()
                return


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(send: Send, error: ApiError, extra: list[tuple[bytes, bytes]]) -> None:
    body = error_body(error.message, error.type, error.code, error.param)
    await _respond(send, error.status, body, [_JSON, *error.headers(), *extra])
