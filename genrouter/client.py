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
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, Unpack, cast, overload
from urllib.parse import urlsplit

from pydantic import BaseModel

from genrouter.catalog import Catalog, ModelSpec, load_builtin_catalog
from genrouter.config import Config, load_config, secret_header_values
from genrouter.errors import ConfigError, GenRouterError, redact, scrub_chain
from genrouter.lifecycle import lifecycle
from genrouter.providers import Provider, create_provider
from genrouter.request import ChatRequest, build_request
from genrouter.routing.budget import Budget
from genrouter.routing.executor import Execution, RuntimeEnv
from genrouter.routing.health import Health
from genrouter.routing.hooks import AsyncHooks, Telemetry
from genrouter.routing.planner import DEFAULT_KEY_ENV, Plan, Planner, refuse_empty
from genrouter.state import build_backend
from genrouter.streaming import AsyncChatStream
from genrouter.structured import SchemaCache, is_model_class, response_format_param
from genrouter.types import ChatCompletion, RouteDecision

if TYPE_CHECKING:
    import httpx2

    from genrouter.params import CompletionCreateParams, MessageInput
    from genrouter.refresh import RefreshReport
    from genrouter.structured import OutputSpec, ParsedChatCompletion
    from genrouter.structured_stream import AsyncChatCompletionStreamManager
    from genrouter.tokens import TokenCounter

__all__ = ["AsyncClient", "AsyncHooks", "ModelStatus"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def _is_loopback(host: str | None) -> bool:
    return bool(host) and (host in ("localhost", "::1") or str(host).startswith("127."))


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """Whether a catalog model can be used from this client right now, and why not."""

    spec: ModelSpec
    usable: bool
    reason: str | None
    lifecycle: str = "live"  # "live", "deprecated until …", "retired on … -> successor"


class AsyncClient:
    """An async client for chat completions across providers, with routing.

    ``config`` is a :class:`~genrouter.config.Config`, a dict, a path to a TOML/JSON/YAML
    file, or ``None`` (read ``$GENROUTER_CONFIG`` or ``./genrouter.toml`` if present; with no
    file, keyed remote models and any local model found on this machine are used). ``env``
    replaces ``os.environ`` as the source of API keys. ``hooks`` are per-client callbacks;
    ``tracing`` controls OpenTelemetry spans: ``None`` (the default) uses the global tracer
    provider once an SDK has configured one, ``False`` turns them off, and a
    ``TracerProvider`` is used instead of the global one; ``metrics`` does the same for the
    GenAI metrics with a ``MeterProvider``. ``capture_content=True`` records prompts and
    answers on spans (off by default; ``None`` reads
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``). See docs/observability.md.
    ``providers`` supplies instances for providers declared ``type = "custom"``.
    ``http_client`` replaces the pool the client would build (it is then not closed by
    ``aclose``). ``token_counter`` lets clients share one :class:`~genrouter.tokens.TokenCounter`
    (its tokenizer files load once, ~0.3 s each, instead of once per client).
    ``today`` returns the date that model lifecycles are judged by (UTC today by default).
    ``model_cache`` is the provider model-list cache file written by :meth:`refresh_models`
    (``None``: the user's cache directory, see :mod:`genrouter.refresh`; ``False``: none).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        hooks: AsyncHooks | None = None,
        tracing: Any = None,
        metrics: Any = None,
        capture_content: bool | None = None,
        providers: Mapping[str, Provider] | None = None,
        http_client: httpx2.AsyncClient | None = None,
        token_counter: TokenCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        today: Callable[[], date] | None = None,
        model_cache: str | os.PathLike[str] | Literal[False] | None = None,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._config = load_config(config, env=self._env)
        self._today = today or _default_today()
        self._model_cache = model_cache
        self._catalog = self._build_catalog()
        self._http: httpx2.AsyncClient | None = http_client
        self._owns_http = http_client is None
        self._providers: dict[str, Provider] = dict(providers or {})
        for name, provider_config in self._config.provider_configs().items():
            if provider_config.type == "custom" and name not in self._providers:
                raise ConfigError(
                    "declared custom but no instance was given in providers=",
                    location=f"providers.{name}",
                )
        self._tokens: TokenCounter | None = token_counter
        self._schemas: SchemaCache = {}  # strict JSON schemas of response_format classes
        self._building = threading.RLock()
        self._clock = clock
        self._closed = False
        self._localities: dict[str, tuple[bool, bool]] = {}
        self._planned_for: set[str] = set()  # `model` values planned once (tokenizers loaded)
        self._off_machine: dict[str, bool] = {}
        self._shared = build_backend(self._config.state)  # None: this process's state only
        telemetry = _telemetry(tracing, metrics, capture_content, self._env)
        health = Health(
            self._config.circuit_breaker,
            self._config.offline,
            shared=self._shared,
            observer=telemetry.health,
        )
        budget = Budget(self._config.budget, shared=self._shared) if self._config.budget else None
        self._planner = Planner(
            self._config,
            self._catalog,
            env=self._env,
            health=health,
            budget=budget,
            tokens=self._token_counter,
            clock=clock,
            discover_local=self._discover_local,
            today=self._today,
        )
        self._runtime = RuntimeEnv(
            provider_for=self._provider_for,
            is_off_machine=self._is_off_machine,
            health=health,
            budget=budget,
            hooks=hooks or AsyncHooks(),
            telemetry=telemetry,
            clock=clock,
            rng=random.Random(seed),
            provider_config=self._planner.provider_config,
            count_tokens=self._count_text,
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

    async def close(self) -> None:
        """Close the client, as openai-python's ``AsyncOpenAI.close()``; same as :meth:`aclose`."""
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
        if self._shared is not None:
            self._shared.close()

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
            with self._building:
                return self._build_http()
        return self._http

    def _build_http(self) -> httpx2.AsyncClient:
        """The one shared pool (under ``_building``: never two, whatever the threads)."""
        if self._http is None:
            import httpx2

            pool = self._config.pool
            limits = httpx2.Limits(
                max_connections=pool.max_connections,
                max_keepalive_connections=pool.max_keepalive_connections,
                keepalive_expiry=pool.keepalive_expiry_s,
            )
            from genrouter._transport_choice import transport_options

            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self._config.timeout_s, connect=5.0),
                limits=limits,
                trust_env=True,
                **transport_options(pool.transport, limits),
            )
        return self._http

    def _cache_file(self) -> Path | None:
        if self._model_cache is False:
            return None
        if self._model_cache is None:
            from genrouter.refresh import cache_path

            return cache_path(self._env)
        return Path(self._model_cache).expanduser()

    def _build_catalog(self) -> Catalog:
        """Built-in catalog, then the refreshed provider lists, then the config's models."""
        base = load_builtin_catalog()
        path = self._cache_file()
        if path is not None and path.exists():
            from genrouter.refresh import load_cache, merge_cache

            cache = load_cache(path)
            if cache is not None:
                base = merge_cache(base, cache, self._config.provider_configs())
        return self._config.build_catalog(base)

    async def refresh_models(self, *, timeout_s: float = 10.0) -> RefreshReport:
        """Read each keyed provider's model list (``GET {base_url}/models``) into the cache.

        Then this client's catalog is rebuilt from it (other clients see it when built). A
        provider that cannot be reached is reported and keeps its previous cache entry; this
        never raises for one. Only called explicitly: never at import or per request.
        """
        from genrouter.refresh import (
            ModelListCache,
            ProviderModelList,
            ProviderRefresh,
            RefreshReport,
            added_models,
            cache_path,
            fetch_model_list,
            load_cache,
            write_cache,
        )

        path = self._cache_file() or cache_path(self._env)
        old = await asyncio.to_thread(load_cache, path)
        lists = dict(old.providers) if old is not None else {}
        results: list[ProviderRefresh] = []
        for name, config in self._config.provider_configs().items():
            if config.type in ("local", "custom") or not self._has_key(name):
                continue
            provider = self.provider(name)
            base_url = getattr(provider, "base_url", None)
            request_headers = getattr(provider, "request_headers", None)
            if not isinstance(base_url, str) or request_headers is None:
                continue
            key = config.resolve_api_key(self._env, getattr(provider, "default_key_env", None))
            url = base_url + "/models"
            try:
                listed = await fetch_model_list(
                    self._http_client(), url, request_headers(key), timeout_s=timeout_s
                )
            except Exception as exc:  # reported per provider; a refresh never fails the caller
                reason = redact(f"{type(exc).__name__}: {exc}".rstrip(": "), [key])
                results.append(ProviderRefresh(name, url, error=reason))
                continue
            lists[name] = ProviderModelList(url=url, fetched_on=self._today(), models=listed)
            results.append(ProviderRefresh(name, url, listed=len(listed)))
        cache = ModelListCache(providers=lists)
        written = any(r.error is None for r in results)
        if written:
            try:
                await asyncio.to_thread(write_cache, path, cache)
            except OSError as exc:
                raise ConfigError(
                    f"cannot write the model cache {str(path)!r}: {exc.strerror}"
                ) from exc
        plain = self._config.build_catalog()
        results = [
            r
            if r.error
            else ProviderRefresh(
                r.provider, r.url, r.listed, added_models(plain, cache, r.provider)
            )
            for r in results
        ]
        self._catalog = self._build_catalog() if path == self._cache_file() else self._catalog
        self._planner.replace_catalog(self._catalog)
        return RefreshReport(path, tuple(results), written)

    def _token_counter(self) -> TokenCounter:
        if self._tokens is None:
            from genrouter.tokens import TokenCounter

            self._tokens = TokenCounter()
        return self._tokens

    def _count_text(self, text: str, spec: ModelSpec) -> int:
        return self._token_counter().count_text(text, spec)

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
            # Concurrent first requests plan on worker threads: build each provider once.
            with self._building:
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
                parts = urlsplit(config.base_url) if config.base_url else None
                host = parts.hostname if parts else None
                known = (True, not _is_loopback(host))
                if parts is not None and parts.netloc:
                    self._runtime.health.reachability.register(spec.provider, parts.netloc)
            self._localities[spec.provider] = known
        return known

    def _is_off_machine(self, provider: Provider) -> bool:
        known = self._off_machine.get(provider.name)
        if known is None:
            known = self._off_machine[provider.name] = _off_machine(provider)
            base_url = getattr(provider, "base_url", None)
            if isinstance(base_url, str) and (host := urlsplit(base_url).netloc):
                self._runtime.health.reachability.register(provider.name, host)
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
        if is_model_class(params.get("response_format")):
            params["response_format"] = response_format_param(
                params["response_format"], self._schemas
            )
        _, plan = self._plan({"model": model, "messages": messages, **params})
        return plan.decision

    def models(self) -> list[ModelStatus]:
        """Every catalog model, and whether it can be used here (keys set, files present).

        The verdict is the one routing uses (:meth:`Planner.unusable`), so ``genrouter
        models``, ``route --explain`` and ``chat`` agree.
        """
        statuses = []
        for spec in self._catalog:
            reason = self._planner.unusable(spec, self._has_key)
            state = lifecycle(spec, self._today()).describe()
            statuses.append(ModelStatus(spec, reason is None, reason, state))
        return statuses

    def _execution(self, request: ChatRequest, plan: Plan) -> Execution:
        refuse_empty(plan.decision, self._runtime.budget, self._clock())
        route = plan.route
        if route.resume and not request.resume:
            request = request.model_copy(update={"resume": True})
        config = self._config
        execution = Execution(
            self._runtime,
            request=request,
            decision=plan.decision,
            route=route,
            specs=plan.specs,
            deadline_s=request.timeout or route.deadline_s or config.timeout_s,
            stream_idle_timeout_s=config.stream_idle_timeout_s,
            first_token_timeout_s=(
                request.first_token_timeout
                or route.first_token_timeout_s
                or config.first_token_timeout_s
            ),
        )
        notes = execution.info.notes
        if plan.decision.notes:
            notes.extend(n for n in plan.decision.notes if n not in notes)
        if self._shared is not None and (degraded := self._shared.note()) is not None:
            notes.append(degraded)
        return execution

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
            and _short_text(messages)
            and not _first_schema(params)
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
        try:
            request, plan = await self._plan_off_loop(params)
            response = await self._execution(request, plan).complete()
        except GenRouterError as exc:
            scrub_chain(exc, self._known_secrets())
            raise
        if response.route is not None:
            response.route.usage = response.usage
        return response

    async def _stream(self, params: Mapping[str, Any]) -> AsyncChatStream:
        try:
            request, plan = await self._plan_off_loop(params)
            execution = self._execution(request, plan)
            stream = AsyncChatStream(
                execution.stream(),
                execution.info,
                include_usage=request.include_usage,
                _fed=execution.delivered,
            )
            await stream._prime()
        except GenRouterError as exc:
            scrub_chain(exc, self._known_secrets())
            raise
        return stream

    def _known_secrets(self) -> list[str]:
        """Every key and secret header value this client's providers resolve (for redaction)."""
        found: list[str] = []
        for config in self._config.provider_configs().values():
            key = config.resolve_api_key(self._env, DEFAULT_KEY_ENV.get(config.type))
            found.extend([key] if key else [])
            found.extend(secret_header_values(config.headers, self._env))
        return found

    async def _parse(self, params: Mapping[str, Any], output: OutputSpec) -> ChatCompletion:
        """A complete call whose every attempt must pass *output*'s check (else: next one)."""
        try:
            request, plan = await self._plan_off_loop(params)
            execution = self._execution(request, plan)
            execution.env = output.checking(execution.env)
            return await execution.complete()
        except GenRouterError as exc:
            scrub_chain(exc, self._known_secrets())
            raise


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
        messages: MessageInput,
        model: str = ...,
        stream: Literal[False] | None = ...,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: MessageInput,
        model: str = ...,
        stream: Literal[True],
        **params: Unpack[CompletionCreateParams],
    ) -> AsyncChatStream: ...

    @overload
    async def create(
        self,
        *,
        messages: MessageInput,
        model: str = ...,
        stream: bool,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | AsyncChatStream: ...

    async def create(
        self,
        *,
        messages: MessageInput,
        model: str = "auto",
        stream: bool | None = False,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | AsyncChatStream:
        """Create a chat completion, routed and made resilient.

        Takes every parameter of openai-python's ``chat.completions.create`` (see
        :class:`~genrouter.params.CompletionCreateParams`; ones the chosen model cannot take
        are dropped and named in ``route.dropped_params``) and genrouter's own:
        ``route_metadata`` (for routing rules), ``provider_options`` (vendor parameters per
        provider kind), ``first_token_timeout`` and ``resume`` (streams: continue on the next
        candidate after a mid-stream failure). ``timeout`` bounds the whole request.
        With ``stream=True`` it returns an :class:`AsyncChatStream` once the first content has
        arrived; failures before that point fail over invisibly.
        """
        if is_model_class(params.get("response_format")):  # response_format=MyModel
            model_class = cast("type[BaseModel]", params["response_format"])
            if not stream:
                rest = cast("dict[str, Any]", params)
                parsed: ChatCompletion = await self.parse(model=model, messages=messages, **rest)
                return parsed
            params["response_format"] = response_format_param(model_class, self._client._schemas)
        call: dict[str, Any] = {"model": model, "messages": messages, "stream": bool(stream)}
        call.update(params)
        if stream:
            return await self._client._stream(call)
        return await self._client._complete(call)

    @overload
    async def parse(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: type[ModelT],
        **params: Any,
    ) -> ParsedChatCompletion[ModelT]: ...

    @overload
    async def parse(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ParsedChatCompletion[None]: ...

    async def parse(
        self,
        *,
        model: str = "auto",
        messages: MessageInput,
        response_format: type[BaseModel] | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ParsedChatCompletion[Any]:
        """openai-python's ``parse()``: the answer as an instance of *response_format*.

        *response_format* is a pydantic model class (sent as OpenAI's strict ``json_schema``,
        a grammar for local models); ``message.parsed`` holds the instance, or ``None`` with
        ``message.refusal`` set when the model refused. Tools made with
        ``openai.pydantic_function_tool`` (or ``strict`` ones) get
        ``tool_calls[i].function.parsed_arguments``. An answer that does not validate raises
        :class:`~genrouter.errors.StructuredOutputError` inside the attempt, so the route's
        next candidate is tried; when all fail, :class:`AllCandidatesFailedError` holds them.
        """
        from genrouter.errors import InvalidRequestError
        from genrouter.structured import ParsedChatCompletion, output_spec

        if params.get("stream"):
            raise InvalidRequestError(
                "parse() returns a whole answer; for a stream use create(stream=True, "
                "response_format=Model) and validate the final completion",
                param="stream",
            )
        params.pop("stream", None)
        output = output_spec(response_format, params.get("tools"), self._client._schemas)
        call: dict[str, Any] = {"model": model, "messages": messages, **params}
        if output.wire_format is not None:
            call["response_format"] = dict(output.wire_format)
        result = await self._client._parse(call, output)
        assert isinstance(result, ParsedChatCompletion)  # what output.check returns
        return result

    @overload
    def stream(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: type[ModelT],
        **params: Any,
    ) -> AsyncChatCompletionStreamManager[ModelT]: ...

    @overload
    def stream(
        self,
        *,
        model: str = ...,
        messages: MessageInput,
        response_format: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> AsyncChatCompletionStreamManager[None]: ...

    def stream(
        self,
        *,
        model: str = "auto",
        messages: MessageInput,
        response_format: type[BaseModel] | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> AsyncChatCompletionStreamManager[Any]:
        """openai-python's ``chat.completions.stream()``: a streamed ``parse()`` as events.

        ``async with client.chat.completions.stream(...) as stream: async for event in
        stream: ...`` then ``await stream.get_final_completion()`` (a
        :class:`~genrouter.structured.ParsedChatCompletion`); see
        :mod:`genrouter.structured_stream` for the events.
        """
        from genrouter.structured_stream import (
            AsyncChatCompletionStreamManager,
            streamed_parse_call,
        )

        call, output = streamed_parse_call(
            model, messages, response_format, params, self._client._schemas
        )

        async def open_stream() -> AsyncChatStream:
            return await self._client._stream(call)

        return AsyncChatCompletionStreamManager(open_stream, output, self._client.model_spec)


def _short_text(messages: object) -> bool:
    """Whether *messages* are plain text (no content list: images, video) short enough to
    count inline (at most :data:`_LONG_TEXT_CHARS`); errs towards no."""
    if not isinstance(messages, list | tuple):
        return False
    total = 0
    for message in messages:
        if type(message) is dict:
            content = message.get("content")
        else:
            content = (
                message.get("content")
                if isinstance(message, Mapping)
                else getattr(message, "content", None)
            )
        if isinstance(content, str):
            total += len(content)
        elif content is not None:
            return False  # a content list (images, video)
    return total <= _LONG_TEXT_CHARS


def _default_today() -> Callable[[], date]:
    """UTC today, looked up when a client is built (so a test can pin it for a whole run)."""
    from genrouter import lifecycle as lifecycle_module

    return lifecycle_module.utc_today


def _first_schema(params: Mapping[str, Any]) -> bool:
    """Whether validating *params* would import ``jsonschema`` (~0.3-0.8 s) for the first time."""
    return "jsonschema" not in sys.modules and bool(
        params.get("tools") or params.get("response_format")
    )


# Above this many characters of text, counting a prompt's tokens takes milliseconds (~0.3 ms
# per KB with tiktoken here): plan it on a worker thread.
_LONG_TEXT_CHARS = 32_000


def _telemetry(
    tracing: Any, metrics: Any, capture_content: bool | None, env: Mapping[str, str]
) -> Telemetry:
    if capture_content is None:
        flag = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
        capture_content = flag.strip().lower() in ("1", "true", "yes")
    return Telemetry(tracing, metrics, capture_content=capture_content)


def _off_machine(provider: Provider) -> bool:
    base_url = getattr(provider, "base_url", None)
    if not isinstance(base_url, str):
        return provider.is_remote
    host = urlsplit(base_url).hostname or ""
    return not _is_loopback(host)
