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
    ContextWindowExceededError,
    FirstTokenTimeoutError,
    GenRouterError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from genrouter.providers.base import Provider, ProviderCall, aclose_if_possible
from genrouter.request import ChatRequest
from genrouter.routing.budget import Budget, Reservation
from genrouter.routing.health import Health, Ticket
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
    """A candidate attempt that worked: its value, when it started, its budget reservation,
    and the circuit-breaker ticket it went through on."""

    value: T
    started: float
    reservation: Reservation | None
    ticket: Ticket


@dataclass(slots=True)
class _Delivered:
    """What a stream has handed to the caller so far (for interruption and resume)."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    other_output: bool = False  # tool calls, refusals, extra choices: not resumable as text
    finished: bool = False  # a finish_reason reached the caller

    def add(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            delta = choice.delta
            if choice.index != 0:
                self.other_output = self.other_output or chunk_has_output(chunk)
                continue
            if delta.content:
                self.text.append(delta.content)
            if delta.reasoning_content:
                self.reasoning.append(delta.reasoning_content)
            if delta.tool_calls or delta.refusal:
                self.other_output = True
            if choice.finish_reason is not None:
                self.finished = True
        if chunk.usage is not None:
            self.usage.append(chunk.usage)

    def resumable(self) -> bool:
        """Whether a continuation can pick up from here: plain answer text only.

        Reasoning would be thought again and re-sent; tool-call arguments would be
        concatenated into invalid JSON. Those streams raise instead of resuming.
        """
        return bool(self.text) and not self.reasoning and not self.other_output


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
        self._estimates = {c.model: c.estimated_cost_usd for c in decision.candidates}
        self.info = RouteInfo(
            route=decision.route,
            decision=decision,
            estimated_cost_usd=self._estimates.get(decision.plan[0]) if decision.plan else None,
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

        A connection failure earlier in this request skips a remote candidate of that provider
        (of every remote provider, when the network is marked down) only when a candidate that
        is not marked is still ahead, such as a local model: that is the offline fallback.
        Without one, the marked candidates are still worth their try.
        """
        now = self.env.clock()
        if now >= self.deadline:
            return "deadline passed"
        if provider.is_remote and self._unmarked_ahead(spec, now):
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

    def _unmarked_ahead(self, spec: ModelSpec, now: float) -> bool:
        plan = self.decision.plan
        later = plan[plan.index(spec.id) + 1 :] if spec.id in plan else ()
        reach = self.env.health.reachability
        for model_id in later:
            other = self.specs[model_id]
            provider = self.env.provider_for(other)
            if not provider.is_remote:
                return True
            off_machine = self.env.is_off_machine(provider)
            if reach.down_reason(other.provider, now, whole_network=off_machine) is None:
                return True
        return False

    def _note_failure(
        self, spec: ModelSpec, provider: Provider, error: BaseException, ticket: Ticket
    ) -> None:
        now = self.env.clock()
        if is_connect_failure(error) and provider.is_remote:
            self.env.health.reachability.mark_unreachable(
                spec.provider, now, whole_network=self.env.is_off_machine(provider)
            )
        circuit = self.env.health.circuit(spec.id)
        transient = classify(error, self.route.retry) is Action.RETRY
        # A slow first token is the model's health too, though it moves on rather than retries.
        if transient or is_connect_failure(error) or isinstance(error, FirstTokenTimeoutError):
            circuit.record_failure(now, ticket)
        else:
            circuit.release(ticket)

    def _note_success(self, spec: ModelSpec, provider: Provider, ticket: Ticket) -> None:
        self.env.health.circuit(spec.id).record_success(ticket)
        if provider.is_remote:
            self.env.health.reachability.mark_reachable(
                spec.provider, whole_network=self.env.is_off_machine(provider)
            )

    def _reserve(self, spec: ModelSpec) -> tuple[bool, Reservation | None]:
        """Set the estimate aside in one step with the check; ``(False, None)``: over budget."""
        budget = self.env.budget
        if budget is None:
            return True, None
        reservation = budget.try_reserve(self._estimates.get(spec.id) or 0.0, self.env.clock())
        return reservation is not None, reservation

    def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.env.budget is not None:
            self.env.budget.release(reservation)

    def _settle(
        self, reservation: Reservation | None, spec: ModelSpec, usage: Usage | None
    ) -> None:
        cost = None
        if usage is not None:
            cost = spec.estimate_cost(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
            self.env.health.prompt_calibration.observe_route(
                self.info, spec.id, usage.prompt_tokens
            )
        if cost is not None:
            self.info.cost_usd = round((self.info.cost_usd or 0.0) + cost, 12)
        if reservation is not None and self.env.budget is not None:
            self.env.budget.settle(reservation, cost, self.env.clock())

    def _merge_call_notes(self, call: ProviderCall) -> None:
        for name in call.dropped_params:
            if name not in self.info.dropped_params:
                self.info.dropped_params.append(name)
        self.info.notes.extend(n for n in call.notes if n not in self.info.notes)

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
        circuit = self.env.health.circuit(spec.id)
        for number in range(1, retry.attempts + 1):
            reason = self._skip_reason(spec, provider)
            ticket = None if reason is not None else circuit.acquire(self.env.clock())
            if ticket is None:
                self.info.notes.append(f"skipped {spec.id}: {reason or 'circuit open'}")
                return None
            fits, reservation = self._reserve(spec)
            if not fits:
                circuit.release(ticket)
                self.info.notes.append(f"skipped {spec.id}: over budget")
                return None
            started = self.env.clock()
            # From here on every exit releases the ticket and the reservation, or hands both on.
            try:
                if self.env.hooks.on_attempt_start is not None:
                    await call_hook(self.env.hooks.on_attempt_start, spec.id, number)
                call = ProviderCall(request, spec, timeout=max(self.deadline - started, 0.001))
                result = await once(provider, call)
            except asyncio.CancelledError:
                self._release(reservation)
                circuit.release(ticket)
                await self._record(spec, "cancelled", started)
                raise
            except GenRouterError as error:
                self._release(reservation)
                self._note_failure(spec, provider, error, ticket)
                delay = self._retry_delay(spec, provider, error, number)
                await self._record(spec, "error", started, error=error, retry_delay_s=delay)
                self.errors.append(error)
                if classify(error, retry) is Action.RAISE:
                    raise
                if delay is None:
                    return None
                await self.env.sleep(delay)
                continue
            except Exception as error:
                # A provider that raises outside the error tree has a bug: surface it, but
                # leave the client's health and budget as they were.
                self._release(reservation)
                circuit.release(ticket)
                await self._record(spec, "error", started, error=error)
                raise
            self._merge_call_notes(call)
            return _Success(result, started, reservation, ticket)
        return None

    def _retry_delay(
        self, spec: ModelSpec, provider: Provider, error: GenRouterError, number: int
    ) -> float | None:
        """Seconds to wait before retrying this candidate, or ``None`` to move on."""
        retry = self.route.retry
        if classify(error, retry) is not Action.RETRY or number >= retry.attempts:
            return None
        delay = backoff_delay(
            number,
            retry.backoff,
            retry_after=getattr(error, "retry_after", None),
            retry_after_cap=retry.retry_after_cap_s,
            rng=self.env.rng,
        )
        if self.env.clock() + delay >= self.deadline:
            return None
        skip = self._skip_reason(spec, provider)
        if skip is not None:
            # This failure made the candidate skippable (offline with a local model ahead):
            # waiting out a backoff first would only delay the fallback.
            self.info.notes.append(f"skipped {spec.id}: {skip}")
            return None
        return delay

    def _plan_specs(self) -> list[ModelSpec]:
        return [self.specs[model_id] for model_id in self.decision.plan]

    async def _moved_on(self, plan: list[ModelSpec], index: int) -> int:
        """Bookkeeping after candidate ``index - 1`` gave up; returns the next index to try.

        Only an error that candidate raised itself counts (it may have been skipped untried):
        a context-window error skips later candidates whose window is no larger than its own.
        """
        failed = plan[index - 1]
        last = self.info.attempts[-1] if self.info.attempts else None
        error = self.errors[-1] if self.errors and last and last.model == failed.id else None
        if isinstance(error, ContextWindowExceededError):
            while index < len(plan) and plan[index].context_window <= failed.context_window:
                self.info.notes.append(f"skipped {plan[index].id}: context window not larger")
                index += 1
        if error is not None and index < len(plan) and self.env.hooks.on_fallback is not None:
            await call_hook(self.env.hooks.on_fallback, failed.id, plan[index].id, error)
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
        self.info.estimated_cost_usd = self._estimates.get(spec.id)
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
            self._note_success(spec, self.env.provider_for(spec), outcome.ticket)
            usage = response.usage
            if usage is not None:
                self.env.health.stats(spec.id).observe(
                    None, usage.completion_tokens, self._elapsed_ms(started) / 1000.0
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
            await aclose_if_possible(chunks)
            raise FirstTokenTimeoutError(
                f"no content within {limit:.3f}s",
                provider=call.model.provider,
                model=call.model.model,
            ) from exc
        except BaseException:
            await aclose_if_possible(chunks)
            raise
        return _Opened(chunks, buffered, self._elapsed_ms(started))

    def _interrupted(self, spec: ModelSpec, delivered: _Delivered, error: BaseException) -> None:
        self.info.model, self.info.provider = spec.id, spec.provider
        self.info.latency_ms = self._elapsed_ms(self.started)
        self.env.telemetry.finish(self._span, self.info, error)
        raise StreamInterruptedError(
            f"stream from {spec.id} broke after delivering output: {error}",
            partial_text="".join(delivered.text),
            partial_reasoning="".join(delivered.reasoning),
            route=self.info,
        ) from error

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
            opened, started = outcome.value, outcome.started
            if self.info.ttft_ms is None:
                self.info.ttft_ms = self._elapsed_ms(self.started)
            provider = self.env.provider_for(spec)
            usage_before = len(delivered.usage)
            ended = False  # the provider's stream ran to its end, or failed: no early close
            try:
                for chunk in opened.buffered:
                    delivered.add(chunk)
                    yield chunk
                async for chunk in opened.chunks:
                    delivered.add(chunk)
                    yield chunk
                ended = True
            except ProviderError as error:
                ended = True
                self._release(outcome.reservation)
                self._note_failure(spec, provider, error, outcome.ticket)
                await self._record(
                    spec, "interrupted", started, error=error, ttft_ms=opened.ttft_ms
                )
                self.errors.append(error)
                if self.request.resume and index < len(plan) and delivered.resumable():
                    request = self.request.continued("".join(delivered.text))
                    self.info.resumed = True
                    self.info.notes.append(
                        f"resumed on the next candidate after {spec.id} failed mid-stream"
                    )
                    if self.env.hooks.on_fallback is not None:
                        await call_hook(self.env.hooks.on_fallback, spec.id, plan[index].id, error)
                    continue
                self._interrupted(spec, delivered, error)
            except Exception as error:
                ended = True  # a provider bug mid-stream: the caller still learns what it got
                self._release(outcome.reservation)
                self.env.health.circuit(spec.id).release(outcome.ticket)
                await self._record(spec, "interrupted", started, error=error)
                self._interrupted(spec, delivered, error)
            finally:
                await aclose_if_possible(opened.chunks)
                if not ended:
                    await self._closed_early(spec, provider, outcome, opened, delivered)
            usage = delivered.usage[-1] if len(delivered.usage) > usage_before else None
            self._note_success(spec, provider, outcome.ticket)
            generation_s = max(self._elapsed_ms(started) - opened.ttft_ms, 0.0) / 1000.0
            self.env.health.stats(spec.id).observe(
                opened.ttft_ms, usage.completion_tokens if usage else 0, generation_s
            )
            self._settle(outcome.reservation, spec, usage)
            await self._record(spec, "ok", started, ttft_ms=opened.ttft_ms)
            await self._succeeded(spec, usage)
            return
        failure = self._all_failed()
        if delivered.text or delivered.reasoning or delivered.other_output:
            # Output already reached the caller: say exactly what, never just "all failed".
            raise StreamInterruptedError(
                "stream broke and no candidate could resume it",
                partial_text="".join(delivered.text),
                partial_reasoning="".join(delivered.reasoning),
                route=self.info,
            ) from failure
        raise failure

    async def _closed_early(
        self,
        spec: ModelSpec,
        provider: Provider,
        outcome: _Success[_Opened],
        opened: _Opened,
        delivered: _Delivered,
    ) -> None:
        """The caller closed or cancelled the stream before the provider's stream ended.

        If the answer had already finished (finish reason or usage delivered), this is a
        success. Otherwise tokens were made and not all read: charge the estimate, record the
        attempt as cancelled, and tell hooks and telemetry.
        """
        usage = delivered.usage[-1] if delivered.usage else None
        if delivered.finished or usage is not None:
            self._note_success(spec, provider, outcome.ticket)
            self._settle(outcome.reservation, spec, usage)
            await self._record(spec, "ok", outcome.started, ttft_ms=opened.ttft_ms)
            await self._succeeded(spec, usage)
            return
        if outcome.reservation is not None and self.env.budget is not None:
            self.env.budget.settle(outcome.reservation, None, self.env.clock())
        self.env.health.circuit(spec.id).release(outcome.ticket)
        self.info.model, self.info.provider = spec.id, spec.provider
        self.info.latency_ms = self._elapsed_ms(self.started)
        await self._record(spec, "cancelled", outcome.started, ttft_ms=opened.ttft_ms)
        self.env.telemetry.finish(self._span, self.info, None)
