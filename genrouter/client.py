"""``AsyncClient``: the one implementation of genrouter's API (``Client`` drives it from sync code).

A client owns everything stateful: its configuration and catalog, its providers and their
shared HTTP pool, what it learned about latency and failures, and its budget. Two clients in
one process share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, overload
from urllib.parse import urlsplit

from pydantic import BaseModel

from genrouter.catalog import ModelSpec
from genrouter.config import Config, load_config
from genrouter.errors import ConfigError, GenRouterError
from genrouter.providers import Provider, create_provider
from genrouter.request import ChatRequest, build_request
from genrouter.routing.budget import Budget
from genrouter.routing.executor import Execution, RuntimeEnv
from genrouter.routing.health import Health
from genrouter.routing.hooks import AsyncHooks, Telemetry
from genrouter.routing.planner import DEFAULT_KEY_ENV, Plan, Planner, refuse_empty
from genrouter.streaming import AsyncChatStream
from genrouter.types import ChatCompletion, RouteDecision

if TYPE_CHECKING:
    import httpx2

    from genrouter.tokens import TokenCounter

__all__ = ["AsyncClient", "AsyncHooks", "ModelStatus"]

MessageInput = Iterable[Mapping[str, Any] | BaseModel]


def _is_loopback(host: str | None) -> bool:
    return bool(host) and (host in ("localhost", "::1") or str(host).startswith("127."))


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Whether a catalog model can be used from this client right now, and why not."""

    spec: ModelSpec
    usable: bool
    reason: str | None


class AsyncClient:
    """An async client for chat completions across providers, with routing.

    ``config`` is a :class:`~genrouter.config.Config`, a dict, a path to a TOML/JSON/YAML
    file, or ``None`` (read ``$GENROUTER_CONFIG`` or ``./genrouter.toml`` if present; with no
    file, keyed remote models and any local model found on this machine are used). ``env``
    replaces ``os.environ`` as the source of API keys. ``hooks`` are per-client callbacks;
    ``tracing`` controls OpenTelemetry spans: ``None`` (the default) uses the global tracer
    provider when ``opentelemetry-api`` is installed, ``False`` turns them off, and a
    ``TracerProvider`` is used instead of the global one.
    ``providers`` supplies instances for providers declared ``type = "custom"``.
    ``http_client`` replaces the pool the client would build (it is then not closed by
    ``aclose``). ``token_counter`` lets clients share one :class:`~genrouter.tokens.TokenCounter`
    (its tokenizer files load once, ~0.3 s each, instead of once per client).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        hooks: AsyncHooks | None = None,
        tracing: Any = None,
        providers: Mapping[str, Provider] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        token_counter: TokenCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._config = load_config(config, env=self._env)
        self._catalog = self._config.build_catalog()
        self._http: httpx2.AsyncClient | None = http_client
        self._owns_http = http_client is None
        self._providers: dict[str, Provider] = dict(providers or {})
        self._providers_lock = threading.Lock()  # the first plan builds providers off the loop
        for name, provider_config in self._config.provider_configs().items():
            if provider_config.type == "custom" and name not in self._providers:
                raise ConfigError(
                    "declared custom but no instance was given in providers=",
                    location=f"providers.{name}",
                )
        self._tokens: TokenCounter | None = token_counter
        self._clock = clock
        self._closed = False
        self._localities: dict[str, tuple[bool, bool]] = {}
        self._planned_for: set[str] = set()  # `model` values planned once (tokenizers loaded)
        self._off_machine: dict[str, bool] = {}
        health = Health(self._config.circuit_breaker, self._config.offline)
        budget = Budget(self._config.budget) if self._config.budget else None
        self._planner = Planner(
            self._config,
            self._catalog,
            env=self._env,
            health=health,
            budget=budget,
            tokens=self._token_counter,
            clock=clock,
            discover_local=self._discover_local,
        )
        self._runtime = RuntimeEnv(
            provider_for=self._provider_for,
            is_off_machine=self._is_off_machine,
            health=health,
            budget=budget,
            hooks=hooks or AsyncHooks(),
            telemetry=Telemetry(tracing),
            clock=clock,
            rng=random.Random(seed),
        )
        self.chat = AsyncChat(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close providers (unloading local models) and the HTTP pool, if this client made it."""
        if self._closed:
            return
        self._closed = True
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
        if self._http is not None and self._owns_http:
            await self._http.aclose()
        self._http = None

    def __repr__(self) -> str:
        return f"<AsyncClient routes={sorted(self._config.routes)} models={len(self._catalog)}>"

    # -- shared resources, created on first use -----------------------------------------------

    @property
    def config(self) -> Config:
        return self._config

    @property
    def health(self) -> Health:
        """What this client has observed: latency averages, circuit breakers, reachability."""
        return self._runtime.health

    def _http_client(self) -> httpx2.AsyncClient:
        if self._http is None:
            import httpx2

            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self._config.timeout_s, connect=5.0),
                limits=httpx2.Limits(max_connections=100, max_keepalive_connections=20),
                trust_env=True,
            )
        return self._http

    def _token_counter(self) -> TokenCounter:
        if self._tokens is None:
            from genrouter.tokens import TokenCounter

            self._tokens = TokenCounter()
        return self._tokens

    def _discover_local(self) -> list[ModelSpec]:
        from genrouter.providers.local.discovery import discover_local_models

        found: list[ModelSpec] = discover_local_models(
            self._catalog, self._config.provider_configs(), self._env
        )
        return found

    def provider(self, name: str) -> Provider:
        """The provider called *name*, built on first use."""
        if self._closed:
            raise ConfigError("this client is closed")
        provider = self._providers.get(name)
        if provider is None:
            with self._providers_lock:
                provider = self._providers.get(name)
                if provider is None:
                    try:
                        config = self._planner.provider_config(name)
                    except KeyError:
                        raise ConfigError(f"provider {name!r} is not configured") from None
                    provider = create_provider(name, config, http=self._http_client, env=self._env)
                    self._providers[name] = provider
        return provider

    def _provider_for(self, spec: ModelSpec) -> Provider:
        return self.provider(spec.provider)

    def _has_key(self, provider_name: str) -> bool:
        config = self._planner.provider_config(provider_name)
        if config.type == "local":
            return True
        if config.type in ("openai_compatible", "custom"):
            return self.provider(provider_name).has_credentials()
        return config.resolve_api_key(self._env, DEFAULT_KEY_ENV.get(config.type)) is not None

    def _locality(self, spec: ModelSpec) -> tuple[bool, bool]:
        """``(is_remote, off_machine)`` for a model; fixed per provider, so computed once."""
        if spec.local:
            return False, False
        known = self._localities.get(spec.provider)
        if known is None:
            config = self._planner.provider_config(spec.provider)
            if config.type == "local":
                known = (False, False)
            elif config.type == "custom":
                provider = self.provider(spec.provider)
                known = (provider.is_remote, provider.is_remote and _off_machine(provider))
            else:
                host = urlsplit(config.base_url).hostname if config.base_url else None
                known = (True, not _is_loopback(host))
            self._localities[spec.provider] = known
        return known

    def _is_off_machine(self, provider: Provider) -> bool:
        known = self._off_machine.get(provider.name)
        if known is None:
            known = self._off_machine[provider.name] = _off_machine(provider)
        return known

    # -- routing ------------------------------------------------------------------------------

    def _plan(self, params: Mapping[str, Any]) -> tuple[ChatRequest, Plan]:
        request = build_request(params)
        plan = self._planner.plan(request, has_key=self._has_key, locality=self._locality)
        return request, plan

    def model_spec(self, name: str) -> ModelSpec | None:
        """The catalog entry for a model id or alias (or an uncatalogued ``provider/model``)."""
        return self._planner.spec(name)

    def route(self, *, model: str = "auto", messages: MessageInput, **params: Any) -> RouteDecision:
        """Dry run: the routing decision for this request, without calling any model."""
        _, plan = self._plan({"model": model, "messages": messages, **params})
        return plan.decision

    def models(self) -> list[ModelStatus]:
        """Every catalog model, and whether it can be used here (keys set, files present)."""
        statuses = []
        local_ids = {s.id for s in self._discover_local()}
        for spec in self._catalog:
            if spec.local:
                usable = spec.id in local_ids
                reason = None if usable else "no model file found (set `path` in config)"
            else:
                usable = self._has_key(spec.provider)
                reason = None if usable else self._planner.missing_credentials(spec, self._has_key)
            statuses.append(ModelStatus(spec, usable, reason))
        return statuses

    def _execution(self, request: ChatRequest, plan: Plan) -> Execution:
        refuse_empty(plan.decision, self._runtime.budget, self._clock())
        route = plan.route
        if route.resume and not request.resume:
            request = request.model_copy(update={"resume": True})
        config = self._config
        return Execution(
            self._runtime,
            request=request,
            decision=plan.decision,
            route=route,
            specs=plan.specs,
            deadline_s=request.timeout or route.deadline_s or config.timeout_s,
            first_token_timeout_s=(
                request.first_token_timeout
                or route.first_token_timeout_s
                or config.first_token_timeout_s
            ),
        )

    async def _plan_off_loop(self, params: Mapping[str, Any]) -> tuple[ChatRequest, Plan]:
        """Plan on a worker thread when planning may be slow, inline otherwise.

        The first plan for a ``model`` value (a route, a model, ``auto``) may load tokenizer
        files (~0.3 s each) and build the providers it names (importing their modules, loading
        the CA bundle: ~0.8 s together); a request with images may read files or decode data
        URIs to size them, and counting a long text takes ~0.3 ms per KB: none of it may stall
        the event loop. Short text requests for a ``model`` planned before inline
        (microseconds).
        """
        messages = params.get("messages")
        target = params.get("model")
        if (
            isinstance(target, str)
            and target in self._planned_for
            and not _has_media(messages)
            and not _is_long(messages)
        ):
            return self._plan(params)
        planned = await asyncio.to_thread(self._plan_and_prepare, params)
        if isinstance(target, str):
            self._planned_for.add(target)
        return planned

    def _plan_and_prepare(self, params: Mapping[str, Any]) -> tuple[ChatRequest, Plan]:
        """Plan (worker thread), and build the providers the plan names if they are new."""
        request, plan = self._plan(params)
        for spec in plan.specs.values():
            if spec.id in plan.decision.plan and spec.provider not in self._providers:
                # A provider that cannot be built fails its attempt, as before.
                with contextlib.suppress(GenRouterError):
                    self.provider(spec.provider)
        if self._http is not None:
            # anyio (under httpcore2) imports its asyncio backend at the first request
            # (~0.15 s); importing it here keeps that off the loop too.
            with contextlib.suppress(ImportError):
                importlib.import_module("anyio._backends._asyncio")
        return request, plan

    async def _complete(self, params: Mapping[str, Any]) -> ChatCompletion:
        request, plan = await self._plan_off_loop(params)
        return await self._execution(request, plan).complete()

    async def _stream(self, params: Mapping[str, Any]) -> AsyncChatStream:
        request, plan = await self._plan_off_loop(params)
        execution = self._execution(request, plan)
        stream = AsyncChatStream(execution.stream(), execution.info)
        await stream._prime()
        return stream


class AsyncChat:
    """``client.chat``: holds ``completions``."""

    def __init__(self, client: AsyncClient) -> None:
        self.completions = AsyncCompletions(client)


class AsyncCompletions:
    """``client.chat.completions``: OpenAI's ``create`` with routing."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        stream: Literal[True],
        **params: Any,
    ) -> AsyncChatStream: ...

    @overload
    async def create(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        stream: bool,
        **params: Any,
    ) -> ChatCompletion | AsyncChatStream: ...

    async def create(
        self,
        *,
        model: str = "auto",
        messages: MessageInput,
        stream: bool = False,
        **params: Any,
    ) -> ChatCompletion | AsyncChatStream:
        """Create a chat completion, routed and made resilient.

        Takes OpenAI's parameters (``max_tokens``, ``temperature``, ``tools``,
        ``response_format``, ``reasoning_effort``…) and genrouter's own: ``metadata`` (for
        routing rules), ``provider_options`` (vendor parameters per provider kind),
        ``extra_body``, ``timeout`` (seconds for the whole request), ``first_token_timeout``
        and ``resume`` (streams: continue on the next candidate after a mid-stream failure).
        With ``stream=True`` it returns an :class:`AsyncChatStream` once the first content has
        arrived; failures before that point fail over invisibly.
        """
        call: dict[str, Any] = {"model": model, "messages": messages, "stream": stream, **params}
        if stream:
            return await self._client._stream(call)
        return await self._client._complete(call)


def _has_media(messages: object) -> bool:
    """Whether any message has a content list (images, video): cheap, errs towards yes."""
    if not isinstance(messages, list | tuple):
        return True
    for message in messages:
        content = (
            message.get("content")
            if isinstance(message, Mapping)
            else getattr(message, "content", None)
        )
        if content is not None and not isinstance(content, str):
            return True
    return False


# Above this many characters of text, counting a prompt's tokens takes milliseconds (~0.3 ms
# per KB with tiktoken here): plan it on a worker thread.
_LONG_TEXT_CHARS = 32_000


def _is_long(messages: object) -> bool:
    """Whether the messages' text is long enough that counting it would stall the loop."""
    if not isinstance(messages, list | tuple):
        return True
    total = 0
    for message in messages:
        content = (
            message.get("content")
            if isinstance(message, Mapping)
            else getattr(message, "content", None)
        )
        if isinstance(content, str):
            total += len(content)
    return total > _LONG_TEXT_CHARS


def _off_machine(provider: Provider) -> bool:
    base_url = getattr(provider, "base_url", None)
    if not isinstance(base_url, str):
        return provider.is_remote
    host = urlsplit(base_url).hostname or ""
    return not _is_loopback(host)
