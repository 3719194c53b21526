"""Carrying out a route plan: attempts, retries, fallbacks, health and budget bookkeeping.

One state machine serves both shapes of call. A *candidate attempt* is "get an answer" for a
complete call and "open the stream and wait for its first content" for a streamed one; until
that point any failure (first-token timeout included) is retried or failed over invisibly.
Once a stream has handed content to the caller, a failure raises
:class:`~genrouter.errors.StreamInterruptedError` with exactly the text delivered, or, with
``resume=True``, continues on the next candidate from that text.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from genrouter.catalog import ModelSpec
from genrouter.config import RouteConfig
from genrouter.errors import (
    AllCandidatesFailedError,
    FirstTokenTimeoutError,
    GenRouterError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from genrouter.providers.base import Provider, ProviderCall
from genrouter.request import ChatRequest
from genrouter.routing.budget import Budget, Reservation
from genrouter.routing.health import Health
from genrouter.routing.hooks import AsyncHooks, Telemetry, call_hook
from genrouter.routing.policy import Action, backoff_delay, classify, is_connect_failure
from genrouter.types import (
    Attempt,
    AttemptOutcome,
    ChatCompletion,
    ChatCompletionChunk,
    RouteDecision,
    RouteInfo,
    Usage,
)

__all__ = ["Execution", "RuntimeEnv", "chunk_has_output"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RuntimeEnv:
    """The client state an execution needs: providers, health, budget, hooks, clock."""

    provider_for: Callable[[ModelSpec], Provider]
    is_off_machine: Callable[[Provider], bool]
    health: Health
    budget: Budget | None
    hooks: AsyncHooks
    telemetry: Telemetry
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)


def chunk_has_output(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries anything the caller would see (text, reasoning, tool calls)."""
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.reasoning_content or delta.tool_calls or delta.refusal:
            return True
    return False


@dataclass(slots=True)
class _Opened:
    """A stream whose first content has arrived; ``buffered`` precedes it."""

    chunks: AsyncIterator[ChatCompletionChunk]
    buffered: list[ChatCompletionChunk]
    ttft_ms: float


@dataclass(slots=True)
class _Success(Generic[T]):
    """A candidate attempt that worked: its value, when it started, its budget reservation."""

    value: T
    started: float
    reservation: Reservation | None


@dataclass(slots=True)
class _Delivered:
    """What a stream has handed to the caller so far (for interruption and resume)."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)

    def add(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            if choice.index == 0:
                if choice.delta.content:
                    self.text.append(choice.delta.content)
                if choice.delta.reasoning_content:
                    self.reasoning.append(choice.delta.reasoning_content)
        if chunk.usage is not None:
            self.usage.append(chunk.usage)


class Execution:
    """One request's run through its plan. Build one per request; not reusable."""

    def __init__(
        self,
        env: RuntimeEnv,
        *,
        request: ChatRequest,
        decision: RouteDecision,
        route: RouteConfig,
        specs: Mapping[str, ModelSpec],
        deadline_s: float,
        first_token_timeout_s: float | None,
    ) -> None:
        self.env = env
        self.request = request
        self.decision = decision
        self.route = route
        self.specs = specs
        self.started = env.clock()
        self.deadline = self.started + deadline_s
        self.first_token_timeout = first_token_timeout_s
        self.info = RouteInfo(
            route=decision.route,
            decision=decision,
            estimated_cost_usd=next(
                (c.estimated_cost_usd for c in decision.candidates if c.eligible), None
            ),
        )
        self.errors: list[Exception] = []
        self._span = env.telemetry.start(request.model)

    # -- bookkeeping -------------------------------------------------------------------------

    def _elapsed_ms(self, since: float) -> float:
        return round((self.env.clock() - since) * 1000.0, 3)

    async def _record(
        self,
        spec: ModelSpec,
        outcome: AttemptOutcome,
        started: float,
        *,
        error: BaseException | None = None,
        ttft_ms: float | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        attempt = Attempt(
            model=spec.id,
            provider=spec.provider,
            outcome=outcome,
            error_type=type(error).__name__ if error else None,
            error=str(error) if error else None,
            status_code=getattr(error, "status_code", None),
            latency_ms=self._elapsed_ms(started),
            ttft_ms=ttft_ms,
            retry_delay_ms=None if retry_delay_s is None else round(retry_delay_s * 1000, 3),
        )
        self.info.attempts.append(attempt)
        if self.env.hooks.on_attempt_end is not None:
            await call_hook(self.env.hooks.on_attempt_end, attempt)

    def _skip_reason(self, spec: ModelSpec, provider: Provider) -> str | None:
        """Why a planned candidate must be skipped now (state changed since the decision).

        A connection failure earlier in this request skips the remaining remote candidates
        only when a local one is still ahead: that is the offline fallback. Without one, the
        remote candidates are still worth their try.
        """
        now = self.env.clock()
        if now >= self.deadline:
            return "deadline passed"
        if provider.is_remote and self._local_ahead(spec):
            reach = self.env.health.reachability.down_reason(
                spec.provider,
                now,
                whole_network=self.env.is_off_machine(provider),
                marked_after=self.started,
            )
            if reach is not None:
                return reach
        blocked = self.env.health.circuit(spec.id).blocked_for(now)
        return None if blocked is None else f"circuit open (retry in {blocked:.1f}s)"

    def _local_ahead(self, spec: ModelSpec) -> bool:
        plan = self.decision.plan
        later = plan[plan.index(spec.id) + 1 :] if spec.id in plan else ()
        return any(not self.env.provider_for(self.specs[m]).is_remote for m in later)

    def _note_failure(self, spec: ModelSpec, provider: Provider, error: BaseException) -> None:
        now = self.env.clock()
        if is_connect_failure(error) and provider.is_remote:
            self.env.health.reachability.mark_unreachable(
                spec.provider, now, whole_network=self.env.is_off_machine(provider)
            )
        if classify(error, self.route.retry) is Action.RETRY or is_connect_failure(error):
            self.env.health.circuit(spec.id).record_failure(now)
        else:
            self.env.health.circuit(spec.id).release()

    def _note_success(self, spec: ModelSpec, provider: Provider) -> None:
        self.env.health.circuit(spec.id).record_success()
        if provider.is_remote:
            self.env.health.reachability.mark_reachable(
                spec.provider, whole_network=self.env.is_off_machine(provider)
            )

    def _reserve(self, spec: ModelSpec) -> Reservation | None:
        if self.env.budget is None:
            return None
        estimate = next(
            (c.estimated_cost_usd for c in self.decision.candidates if c.model == spec.id), None
        )
        return self.env.budget.reserve(estimate or 0.0)

    def _settle(
        self, reservation: Reservation | None, spec: ModelSpec, usage: Usage | None
    ) -> None:
        cost = None
        if usage is not None:
            cost = spec.estimate_cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
        if cost is not None:
            self.info.cost_usd = round((self.info.cost_usd or 0.0) + cost, 12)
        if reservation is not None and self.env.budget is not None:
            self.env.budget.settle(reservation, cost, self.env.clock())

    # -- the attempt loop shared by both call shapes --------------------------------------------

    async def _try_candidate(
        self,
        spec: ModelSpec,
        request: ChatRequest,
        once: Callable[[Provider, ProviderCall], Awaitable[T]],
    ) -> _Success[T] | None:
        """Try one candidate up to ``retry.attempts`` times. ``None`` means: move on."""
        provider = self.env.provider_for(spec)
        retry = self.route.retry
        for number in range(1, retry.attempts + 1):
            reason = self._skip_reason(spec, provider)
            if reason is not None or not self.env.health.circuit(spec.id).acquire(self.env.clock()):
                self.info.notes.append(f"skipped {spec.id}: {reason or 'circuit open'}")
                return None
            call = ProviderCall(request, spec, timeout=max(self.deadline - self.env.clock(), 0.001))
            if self.env.hooks.on_attempt_start is not None:
                await call_hook(self.env.hooks.on_attempt_start, spec.id, number)
            reservation = self._reserve(spec)
            started = self.env.clock()
            try:
                result = await once(provider, call)
            except asyncio.CancelledError:
                self._release(reservation)
                self.env.health.circuit(spec.id).release()
                await self._record(spec, "cancelled", started)
                raise
            except GenRouterError as error:
                self._release(reservation)
                self._note_failure(spec, provider, error)
                action = classify(error, retry)
                delay = None
                if action is Action.RETRY and number < retry.attempts:
                    delay = backoff_delay(
                        number,
                        retry.backoff,
                        retry_after=getattr(error, "retry_after", None),
                        retry_after_cap=retry.retry_after_cap_s,
                        rng=self.env.rng,
                    )
                    if self.env.clock() + delay >= self.deadline:
                        delay = None
                skip = self._skip_reason(spec, provider) if delay is not None else None
                if skip is not None:
                    # This failure made the candidate skippable (offline with a local model
                    # ahead): waiting out a backoff first would only delay the fallback.
                    delay = None
                    self.info.notes.append(f"skipped {spec.id}: {skip}")
                await self._record(spec, "error", started, error=error, retry_delay_s=delay)
                self.errors.append(error)
                if action is Action.RAISE:
                    raise
                if delay is None:
                    return None
                await self.env.sleep(delay)
                continue
            self._merge_call_notes(call)
            return _Success(result, started, reservation)
        return None

    def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.env.budget is not None:
            self.env.budget.release(reservation)

    def _merge_call_notes(self, call: ProviderCall) -> None:
        for name in call.dropped_params:
            if name not in self.info.dropped_params:
                self.info.dropped_params.append(name)
        self.info.notes.extend(n for n in call.notes if n not in self.info.notes)

    def _plan_specs(self) -> list[ModelSpec]:
        return [self.specs[model_id] for model_id in self.decision.plan]

    def _skip_smaller_windows(self, plan: list[ModelSpec], index: int, error: BaseException) -> int:
        """After a context-window error, jump past candidates whose window is no larger."""
        from genrouter.errors import ContextWindowExceededError

        if not isinstance(error, ContextWindowExceededError):
            return index
        window = plan[index - 1].context_window
        while index < len(plan) and plan[index].context_window <= window:
            self.info.notes.append(f"skipped {plan[index].id}: context window not larger")
            index += 1
        return index

    async def _moved_on(self, plan: list[ModelSpec], index: int) -> int:
        """Bookkeeping after candidate ``index - 1`` failed; returns the next index to try."""
        last_error = self.errors[-1] if self.errors else None
        if last_error is not None:
            index = self._skip_smaller_windows(plan, index, last_error)
        if index < len(plan) and last_error is not None:
            await call_hook(
                self.env.hooks.on_fallback, plan[index - 1].id, plan[index].id, last_error
            )
        return index

    def _all_failed(self) -> AllCandidatesFailedError:
        self.info.latency_ms = self._elapsed_ms(self.started)
        tried = ", ".join(dict.fromkeys(a.model for a in self.info.attempts)) or "none"
        err = AllCandidatesFailedError(
            f"every candidate failed (route {self.info.route!r}; tried {tried})",
            self.errors or [GenRouterError("no candidate could be tried")],
            route=self.info,
        )
        self.env.telemetry.finish(self._span, self.info, err)
        return err

    async def _succeeded(self, spec: ModelSpec, usage: Usage | None) -> None:
        self.info.model, self.info.provider = spec.id, spec.provider
        self.info.latency_ms = self._elapsed_ms(self.started)
        if usage is not None:
            self.env.telemetry.usage(self._span, usage.prompt_tokens, usage.completion_tokens)
        self.env.telemetry.finish(self._span, self.info, None)
        if self.env.hooks.on_complete is not None:
            await call_hook(self.env.hooks.on_complete, self.info)

    # -- complete ------------------------------------------------------------------------------

    async def _complete_once(self, provider: Provider, call: ProviderCall) -> ChatCompletion:
        if provider.is_remote:
            # Remote providers bound every connect/read/write by ``call.timeout`` (the time
            # left) themselves; a second timer here would cost more than the request's
            # routing (measured in bench/overhead.py).
            return await provider.complete(call)
        remaining = self.deadline - self.env.clock()
        try:
            async with asyncio.timeout(remaining):
                return await provider.complete(call)
        except TimeoutError as exc:
            raise ProviderTimeoutError(
                f"no answer within the request deadline ({remaining:.1f}s left)",
                provider=call.model.provider,
                model=call.model.model,
            ) from exc

    async def complete(self) -> ChatCompletion:
        """Run the plan for a complete (non-streamed) answer."""
        plan = self._plan_specs()
        index = 0
        while index < len(plan):
            spec = plan[index]
            index += 1
            outcome = await self._try_candidate(spec, self.request, self._complete_once)
            if outcome is None:
                index = await self._moved_on(plan, index)
                continue
            response, started = outcome.value, outcome.started
            provider = self.env.provider_for(spec)
            self._note_success(spec, provider)
            latency_ms = self._elapsed_ms(started)
            usage = response.usage
            if usage is not None:
                self.env.health.stats(spec.id).observe(
                    None, usage.completion_tokens, latency_ms / 1000.0
                )
            self._settle(outcome.reservation, spec, usage)
            await self._record(spec, "ok", started)
            await self._succeeded(spec, usage)
            response.route = self.info
            return response
        raise self._all_failed()

    # -- stream --------------------------------------------------------------------------------

    async def _open_stream(self, provider: Provider, call: ProviderCall) -> _Opened:
        started = self.env.clock()
        chunks = provider.stream(call)
        buffered: list[ChatCompletionChunk] = []
        limit = self.deadline - started
        if self.first_token_timeout is not None:
            limit = min(limit, self.first_token_timeout)
        try:
            async with asyncio.timeout(limit):
                async for chunk in chunks:
                    buffered.append(chunk)
                    if chunk_has_output(chunk):
                        break
        except TimeoutError as exc:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise FirstTokenTimeoutError(
                f"no content within {limit:.3f}s",
                provider=call.model.provider,
                model=call.model.model,
            ) from exc
        except BaseException:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        return _Opened(chunks, buffered, self._elapsed_ms(started))

    async def stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Run the plan as a stream; yields chunks exactly once each."""
        plan = self._plan_specs()
        delivered = _Delivered()
        request = self.request
        index = 0
        while index < len(plan):
            spec = plan[index]
            index += 1
            outcome = await self._try_candidate(spec, request, self._open_stream)
            if outcome is None:
                index = await self._moved_on(plan, index)
                continue
            opened, started, reservation = outcome.value, outcome.started, outcome.reservation
            if self.info.ttft_ms is None:
                self.info.ttft_ms = self._elapsed_ms(self.started)
            provider = self.env.provider_for(spec)
            usage_before = len(delivered.usage)
            finished = False
            try:
                for chunk in opened.buffered:
                    delivered.add(chunk)
                    yield chunk
                async for chunk in opened.chunks:
                    delivered.add(chunk)
                    yield chunk
                finished = True
            except ProviderError as error:
                self._release(reservation)
                self._note_failure(spec, provider, error)
                await self._record(
                    spec, "interrupted", started, error=error, ttft_ms=opened.ttft_ms
                )
                self.errors.append(error)
                if self.request.resume and index < len(plan):
                    request = self.request.continued("".join(delivered.text))
                    self.info.resumed = True
                    self.info.notes.append(
                        f"resumed on the next candidate after {spec.id} failed mid-stream"
                    )
                    await call_hook(self.env.hooks.on_fallback, spec.id, plan[index].id, error)
                    continue
                self.info.latency_ms = self._elapsed_ms(self.started)
                self.env.telemetry.finish(self._span, self.info, error)
                raise StreamInterruptedError(
                    f"stream from {spec.id} broke after delivering text: {error}",
                    partial_text="".join(delivered.text),
                    partial_reasoning="".join(delivered.reasoning),
                    route=self.info,
                ) from error
            finally:
                await opened.chunks.aclose()  # type: ignore[attr-defined]
                if not finished and not self._failed_last(spec):
                    self._stopped_early(spec, started, opened.ttft_ms, reservation)
            usage = delivered.usage[-1] if len(delivered.usage) > usage_before else None
            self._note_success(spec, provider)
            generation_s = max(self._elapsed_ms(started) - opened.ttft_ms, 0.0) / 1000.0
            self.env.health.stats(spec.id).observe(
                opened.ttft_ms, usage.completion_tokens if usage else 0, generation_s
            )
            self._settle(reservation, spec, usage)
            await self._record(spec, "ok", started, ttft_ms=opened.ttft_ms)
            await self._succeeded(spec, usage)
            return
        failure = self._all_failed()
        if delivered.text or delivered.reasoning:
            # Text already reached the caller: say exactly what, never just "all failed".
            raise StreamInterruptedError(
                "stream broke and no candidate could resume it",
                partial_text="".join(delivered.text),
                partial_reasoning="".join(delivered.reasoning),
                route=self.info,
            ) from failure
        raise failure

    def _failed_last(self, spec: ModelSpec) -> bool:
        last = self.info.attempts[-1] if self.info.attempts else None
        return last is not None and last.model == spec.id and last.outcome == "interrupted"

    def _stopped_early(
        self,
        spec: ModelSpec,
        started: float,
        ttft_ms: float,
        reservation: Reservation | None,
    ) -> None:
        """The caller closed or cancelled the stream: tokens were made, so charge the estimate."""
        if reservation is not None and self.env.budget is not None:
            self.env.budget.settle(reservation, None, self.env.clock())
        self.env.health.circuit(spec.id).release()
        self.info.attempts.append(
            Attempt(
                model=spec.id,
                provider=spec.provider,
                outcome="cancelled",
                latency_ms=self._elapsed_ms(started),
                ttft_ms=ttft_ms,
            )
        )
        self.info.model, self.info.provider = spec.id, spec.provider
