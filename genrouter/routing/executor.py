"""Carrying out a route plan: attempts, retries, fallbacks, clocks, health and budget bookkeeping.

One state machine serves both shapes of call. A *candidate attempt* is "get an answer" for a
complete call and "open the stream and wait for its first content" for a streamed one; until
that point any failure (a timeout included) is retried or failed over invisibly. Once a
stream has handed content to the caller, a failure raises
:class:`~genrouter.errors.StreamInterruptedError` with exactly the text delivered, or, with
``resume=True``, continues on the next candidate from that text.

The executor owns every clock of a request (no provider keeps its own): the overall deadline
(:class:`~genrouter.errors.DeadlineExceededError`, never the model's fault), the per-attempt
timeout (:class:`~genrouter.errors.AttemptTimeoutError`), the first-token timeout
(:class:`~genrouter.errors.FirstTokenTimeoutError`) and the stream idle timeout
(:class:`~genrouter.errors.StreamIdleTimeoutError`). A stream is complete only when its
``finish_reason`` arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NoReturn, TypeVar

from genrouter.catalog import ModelSpec
from genrouter.config import ProviderConfig, RouteConfig
from genrouter.errors import (
    AllCandidatesFailedError,
    AttemptTimeoutError,
    ContextWindowExceededError,
    DeadlineExceededError,
    FirstTokenTimeoutError,
    GenRouterError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    StreamIdleTimeoutError,
    StreamInterruptedError,
)
from genrouter.providers.base import Provider, ProviderCall, aclose_if_possible
from genrouter.request import ChatRequest
from genrouter.routing.attempt import (
    Delivered,
    Lease,
    SeamTrimmer,
    StreamProgress,
    chunk_has_output,
)
from genrouter.routing.budget import Budget
from genrouter.routing.health import CircuitBreaker, Health, Ticket
from genrouter.routing.hooks import AsyncHooks, Telemetry, call_hook
from genrouter.routing.policy import (
    INCOMPLETE_STREAM,
    Action,
    classify,
    counts_against_health,
    is_connect_failure,
    is_network_level,
    retry_delay,
    waits_out_retry_after,
)
from genrouter.types import (
    Attempt,
    AttemptOutcome,
    ChatCompletion,
    ChatCompletionChunk,
    RouteDecision,
    RouteInfo,
    Usage,
    _set_fields,
)

__all__ = ["Execution", "RuntimeEnv", "chunk_has_output"]

T = TypeVar("T")
_DEADLINE = "the request's deadline"


@dataclass(frozen=True, slots=True)
class RuntimeEnv:
    """The client state an execution needs: providers, health, budget, hooks, clock.

    ``provider_config`` gives a provider's settings (its ``timeout_s``, whether it may omit
    ``finish_reason``); ``count_tokens`` counts text with a model's tokenizer, for usage the
    server did not report.
    """

    provider_for: Callable[[ModelSpec], Provider]
    is_off_machine: Callable[[Provider], bool]
    health: Health
    budget: Budget | None
    hooks: AsyncHooks
    telemetry: Telemetry
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    provider_config: Callable[[str], ProviderConfig] | None = None
    count_tokens: Callable[[str, ModelSpec], int] | None = None


class _Watchdog:
    """One stream's chunk clock, at a float assignment per chunk.

    A fresh ``asyncio.timeout`` around every chunk costs a timer handle each (tens of µs per
    chunk measured here). This keeps one handle per stream instead: each wait only moves the
    due time (:meth:`arm`), and a handle that fires early (the stream moved on since it was
    set) re-arms itself at the current due time. When a wait really passes its due time, the
    waiting task is cancelled; :meth:`timed_out` tells that cancellation from any other. The
    stream awaits the provider itself between :meth:`arm` and :meth:`disarm` (no coroutine
    of the watchdog's own around each chunk: one frame fewer per chunk).
    """

    __slots__ = ("_due", "_fired", "_handle", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._fired = False

    def arm(self, limit: float) -> None:
        """The next wait, by the current task, may take *limit* seconds."""
        loop = self._loop
        self._due = due = loop.time() + limit
        self._task = asyncio.current_task(loop)
        handle = self._handle
        if handle is None or handle.when() > due:
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(due, self._fire)

    def disarm(self) -> None:
        """The wait is over (a chunk, the end, or an error)."""
        self._task = None

    def timed_out(self) -> bool:
        """Whether the ``CancelledError`` being handled is this watchdog's (then absorbed)."""
        if self._fired and self._task is not None and self._task.uncancel() == 0:
            self._fired = False
            return True
        return False

    def _fire(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # not waiting now: the next wait arms a new handle
        if self._loop.time() < self._due:
            self._handle = self._loop.call_at(self._due, self._fire)
            return
        self._fired = True
        task.cancel()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(slots=True)
class _Opened:
    """A stream whose first content has arrived; ``buffered`` precedes it."""

    chunks: AsyncIterator[ChatCompletionChunk]
    buffered: list[ChatCompletionChunk]
    ttft_ms: float
    watch: _Watchdog  # armed for the first content; the stream re-arms it per chunk


@dataclass(slots=True)
class _Success(Generic[T]):
    """A candidate attempt that worked: its value and the lease it holds."""

    value: T
    lease: Lease


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
        stream_idle_timeout_s: float | None = None,
    ) -> None:
        self.env = env
        self.request = request
        self.decision = decision
        self.route = route
        self.specs = specs
        self.started = env.clock()
        self.deadline = self.started + deadline_s
        self.first_token_timeout = first_token_timeout_s
        self.idle_timeout = route.stream_idle_timeout_s or stream_idle_timeout_s
        self._estimates = {c.model: c.estimated_cost_usd for c in decision.candidates}
        self._prompt_tokens = {c.model: c.prompt_tokens for c in decision.candidates}
        self.info = RouteInfo(
            route=decision.route,
            decision=decision,
            estimated_cost_usd=self._estimates.get(decision.plan[0]) if decision.plan else None,
        )
        self.errors: list[Exception] = []
        self._obs = env.telemetry.begin(request)  # None: nothing would record (the cheap path)
        # What a stream delivered: also the accumulator its AsyncChatStream reads.
        self.delivered = Delivered()
        self._span_open = True

    # -- clocks: every time limit of the request lives here ------------------------------------

    def _provider_setting(self, spec: ModelSpec) -> ProviderConfig | None:
        lookup = self.env.provider_config
        return None if lookup is None else lookup(spec.provider)

    def _attempt_limit(
        self, spec: ModelSpec, *, first_token: bool
    ) -> tuple[float, type[ProviderTimeoutError], str]:
        """The tightest clock on an attempt starting now: ``(seconds, error class, what)``.

        The request's deadline always applies; the per-attempt timeout (the route's
        ``attempt_timeout_s``, else the provider's ``timeout_s``) bounds a non-streamed attempt
        and a stream's wait for its first content, as does ``first_token_timeout`` for streams.
        On a tie the deadline wins: it is the caller's clock.
        """
        limit: float = self.deadline - self.env.clock()
        kind: type[ProviderTimeoutError] = DeadlineExceededError
        what = _DEADLINE
        per_attempt = self.route.attempt_timeout_s
        if per_attempt is None:
            setting = self._provider_setting(spec)
            per_attempt = None if setting is None else setting.timeout_s
        if per_attempt is not None and per_attempt < limit:
            limit, kind, what = per_attempt, AttemptTimeoutError, "the attempt timeout"
        first = self.first_token_timeout if first_token else None
        if first is not None and first < limit:
            limit, kind, what = first, FirstTokenTimeoutError, "first_token_timeout"
        return max(limit, 0.0), kind, what

    @staticmethod
    def _expired(
        kind: type[ProviderTimeoutError], what: str, limit: float, spec: ModelSpec, doing: str
    ) -> ProviderTimeoutError:
        return kind(
            f"{doing} exceeded {what} ({limit:.3f}s)", provider=spec.provider, model=spec.model
        )

    def _chunk_limit(self, spec: ModelSpec) -> tuple[float, bool]:
        """The next chunk's wait: ``(seconds, whether the idle timeout sets it)``; raises
        when no time is left."""
        left = self.deadline - self.env.clock()
        idle = self.idle_timeout
        by_idle = idle is not None and idle < left
        limit = idle if by_idle and idle is not None else left
        if limit <= 0:
            raise self._chunk_expired(spec, 0.0, by_idle, "the stream")
        return limit, by_idle

    def _chunk_expired(
        self, spec: ModelSpec, limit: float, idle: bool, doing: str = "waiting for the next chunk"
    ) -> ProviderTimeoutError:
        if idle:
            return self._expired(StreamIdleTimeoutError, "stream_idle_timeout", limit, spec, doing)
        return self._expired(DeadlineExceededError, _DEADLINE, limit, spec, doing)

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
        if self._obs is not None or retry_delay_s is not None:  # else there is nothing to do
            self.env.telemetry.attempt_ended(self._obs, attempt, error)
        if self.env.hooks.on_attempt_end is not None:
            await call_hook(self.env.hooks.on_attempt_end, attempt)

    def _skip_reason(self, spec: ModelSpec, provider: Provider) -> str | None:
        """Why a planned candidate must be skipped now (state changed since the decision).

        A connection failure earlier in this request skips a remote candidate on that host
        (every remote one, when the network is marked down) only when a candidate that is not
        marked is still ahead, such as a local model: that is the offline fallback. Without
        one, the marked candidates are still worth their try.
        """
        now = self.env.clock()
        if now >= self.deadline:
            return "deadline passed"
        cooling = self.env.health.cooling_reason(spec.id, now)
        if cooling is not None:
            return cooling
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
        self, lease: Lease, provider: Provider, error: BaseException, cost: float | None = None
    ) -> None:
        """Settle a failed attempt's lease: health per :func:`counts_against_health`, and
        *cost* charged (an interrupted stream pays for what it delivered)."""
        if is_connect_failure(error) and provider.is_remote:
            self.env.health.reachability.mark_unreachable(
                lease.spec.provider,
                self.env.clock(),
                whole_network=self.env.is_off_machine(provider),
                network_level=is_network_level(error),
            )
        lease.fail(counts=counts_against_health(error, self.route.retry), cost=cost)

    def _note_reachable(self, spec: ModelSpec, provider: Provider) -> None:
        if provider.is_remote:
            self.env.health.reachability.mark_reachable(
                spec.provider, whole_network=self.env.is_off_machine(provider)
            )

    def _lease(self, spec: ModelSpec, circuit: CircuitBreaker, ticket: Ticket) -> Lease | None:
        """Set the estimate aside in one step with the check; ``None``: over budget."""
        budget = self.env.budget
        reservation = None
        if budget is not None:
            reservation = budget.try_reserve(self._estimates.get(spec.id) or 0.0, self.env.clock())
            if reservation is None:
                circuit.release(ticket)
                return None
        clock = self.env.clock
        if self._obs is not None:
            self._obs.attempt_started(spec, self.env.provider_for(spec))
        return Lease(spec, circuit, ticket, budget, reservation, clock, clock())

    def _cost(self, spec: ModelSpec, usage: Usage | None) -> float | None:
        if usage is None:
            return None
        if not self.info.usage_estimated:
            # Only a count the server reported teaches the prompt-estimate calibration.
            self.env.health.prompt_calibration.observe_route(
                self.info, spec.id, usage.prompt_tokens
            )
        cost = spec.estimate_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        if cost is not None:
            self.info.cost_usd = round((self.info.cost_usd or 0.0) + cost, 12)
        return cost

    def _estimate_usage(self, spec: ModelSpec, text: str, prefix: str = "") -> Usage | None:
        """Usage counted with the model's tokenizer, for servers that report none."""
        count = self.env.count_tokens
        if count is None:
            return None
        prompt = self._prompt_tokens.get(spec.id) or 0
        if prefix:
            prompt += count(prefix, spec)
        completion = count(text, spec) if text else 0
        self.info.usage_estimated = True
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def _merge_call_notes(self, call: ProviderCall) -> None:
        if not call.dropped_params and not call.notes:
            return
        for name in call.dropped_params:
            if name not in self.info.dropped_params:
                self.info.dropped_params.append(name)
        self.info.notes.extend(n for n in call.notes if n not in self.info.notes)

    def _finish_span(self, error: BaseException | None) -> None:
        if self._span_open:
            self._span_open = False
            if self._obs is not None:
                self._obs.finish(self.info, error)

    # -- the attempt loop shared by both call shapes --------------------------------------------

    async def _try_candidate(
        self,
        spec: ModelSpec,
        request: ChatRequest,
        once: Callable[[Provider, ProviderCall], Awaitable[T]],
    ) -> _Success[T] | None:
        """Try one candidate up to ``retry.attempts`` times. ``None`` means: move on.

        The first try is a plain call; only after it failed and the policy chose to retry do
        the retries run under tenacity (:meth:`_retry`), so a success pays nothing for it.
        """
        provider = self.env.provider_for(spec)
        retry = self.route.retry
        circuit = self.env.health.circuit(spec.id)

        async def attempt(number: int) -> _Success[T] | float | None:
            """One try: its success, the policy's wait before the next try, or ``None``."""
            reason = self._skip_reason(spec, provider)
            ticket = None if reason is not None else circuit.acquire(self.env.clock())
            if ticket is None:
                self.info.notes.append(f"skipped {spec.id}: {reason or 'circuit open'}")
                return None
            lease = self._lease(spec, circuit, ticket)
            if lease is None:
                self.info.notes.append(f"skipped {spec.id}: over budget")
                return None
            # From here on every exit settles the lease or hands it on.
            try:
                if self.env.hooks.on_attempt_start is not None:
                    await call_hook(self.env.hooks.on_attempt_start, spec.id, number)
                left = max(self.deadline - lease.started, 0.001)
                call = ProviderCall(request, spec, timeout=left)
                result = await once(provider, call)
            except asyncio.CancelledError:
                lease.release()
                await self._record(spec, "cancelled", lease.started)
                raise
            except GenRouterError as error:
                self._note_failure(lease, provider, error)
                delay = self._retry_delay(spec, provider, error, number)
                await self._record(spec, "error", lease.started, error=error, retry_delay_s=delay)
                self.errors.append(error)
                action = classify(error, retry, on_content_filter=self.route.on_content_filter)
                if action is Action.RAISE:
                    self._finish_span(error)
                    raise
                return delay
            except Exception as error:
                # A provider that raises outside the error tree has a bug: surface it, but
                # leave the client's health and budget as they were.
                lease.release()
                await self._record(spec, "error", lease.started, error=error)
                self._finish_span(error)
                raise
            self._merge_call_notes(call)
            return _Success(result, lease)

        first = await attempt(1)
        if first is None or isinstance(first, _Success):
            return first
        return await self._retry(attempt, first)

    async def _retry(
        self, attempt: Callable[[int], Awaitable[_Success[T] | float | None]], delay: float
    ) -> _Success[T] | None:
        """Tries 2… of a candidate whose first try failed with a retryable error, after
        *delay*, under tenacity: genrouter's policy (:meth:`_retry_delay`, which each try
        applies to its own failure) is tenacity's retry decision and its wait, and
        ``retry.attempts`` its stop."""
        from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

        def chosen_wait(state: RetryCallState) -> float:
            outcome = state.outcome
            return float(outcome.result()) if outcome is not None else 0.0

        numbers = itertools.count(2)

        async def again() -> _Success[T] | float | None:
            return await attempt(next(numbers))

        retrying = AsyncRetrying(
            sleep=self.env.sleep,
            retry=retry_if_result(lambda result: isinstance(result, int | float)),
            wait=chosen_wait,
            stop=stop_after_attempt(self.route.retry.attempts - 1),
            retry_error_callback=lambda state: None,  # out of tries: move on
            reraise=True,
        )
        await self.env.sleep(delay)
        result: _Success[T] | None = await retrying(again)
        return result

    def _retry_delay(
        self, spec: ModelSpec, provider: Provider, error: GenRouterError, number: int
    ) -> float | None:
        """Seconds to wait before retrying this candidate, or ``None`` to move on.

        A ``Retry-After`` too long to wait out (see :func:`waits_out_retry_after`) is not a
        sleep but routing: the model cools down until then, across requests, and the next
        candidate gets this one at once.
        """
        retry = self.route.retry
        now = self.env.clock()
        retry_after = getattr(error, "retry_after", None)
        if (
            isinstance(retry_after, int | float)
            and retry_after > 0
            and not waits_out_retry_after(retry_after, retry, self.deadline - now)
        ):
            self.env.health.cool_down(spec.id, now, retry_after)
            self.info.notes.append(
                f"moved on from {spec.id}: Retry-After {retry_after:g}s; "
                + (self.env.health.cooling_reason(spec.id, now) or "cooling down")
            )
            return None
        delay = retry_delay(error, number, retry, time_left=self.deadline - now, rng=self.env.rng)
        if delay is None:
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
        if error is not None and index < len(plan):
            self.env.telemetry.fallback(self._obs, failed.id, plan[index].id, error)
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
        self._finish_span(err)
        return err

    async def _succeeded(self, spec: ModelSpec, usage: Usage | None) -> None:
        _set_fields(
            self.info,
            model=spec.id,
            provider=spec.provider,
            estimated_cost_usd=self._estimates.get(spec.id),
            latency_ms=self._elapsed_ms(self.started),
        )
        self._finish_span(None)
        if self.env.hooks.on_complete is not None:
            await call_hook(self.env.hooks.on_complete, self.info)

    # -- complete ------------------------------------------------------------------------------

    async def _complete_once(self, provider: Provider, call: ProviderCall) -> ChatCompletion:
        spec = call.model
        limit, kind, what = self._attempt_limit(spec, first_token=False)
        call.timeout = max(limit, 0.001)
        watch = _Watchdog(asyncio.get_running_loop())
        watch.arm(limit)
        try:
            return await provider.complete(call)
        except asyncio.CancelledError:
            if not watch.timed_out():
                raise
            raise self._expired(kind, what, limit, spec, "the answer") from TimeoutError()
        finally:
            watch.disarm()
            watch.stop()

    async def complete(self) -> ChatCompletion:
        """Run the plan for a complete (non-streamed) answer."""
        try:
            return await self._complete()
        except BaseException as error:
            self._finish_span(error)
            raise

    async def _complete(self) -> ChatCompletion:
        plan = self._plan_specs()
        index = 0
        while index < len(plan):
            spec = plan[index]
            index += 1
            outcome = await self._try_candidate(spec, self.request, self._complete_once)
            if outcome is None:
                index = await self._moved_on(plan, index)
                continue
            response, lease = outcome.value, outcome.lease
            self._note_reachable(spec, self.env.provider_for(spec))
            usage = response.usage
            if usage is None:
                text = "".join(c.message.content or "" for c in response.choices)
                usage = response.usage = self._estimate_usage(spec, text)
            if usage is not None:
                self.env.health.stats(spec.id).observe(
                    None, usage.completion_tokens, self._elapsed_ms(lease.started) / 1000.0
                )
            lease.succeed(self._cost(spec, usage))
            if self._obs is not None:
                self._obs.answered(response)
            await self._record(spec, "ok", lease.started)
            await self._succeeded(spec, usage)
            response.route = self.info
            return response
        raise self._all_failed()

    # -- stream --------------------------------------------------------------------------------

    async def _open_stream(self, provider: Provider, call: ProviderCall) -> _Opened:
        started = self.env.clock()
        spec = call.model
        limit, kind, what = self._attempt_limit(spec, first_token=True)
        chunks = provider.stream(call)
        buffered: list[ChatCompletionChunk] = []
        # The same watchdog then times every later chunk (one timer handle per stream).
        watch = _Watchdog(asyncio.get_running_loop())
        watch.arm(limit)
        output = False
        try:
            async for chunk in chunks:
                buffered.append(chunk)
                if chunk_has_output(chunk):
                    output = True
                    break
        except asyncio.CancelledError:
            expired = watch.timed_out()
            watch.stop()
            await aclose_if_possible(chunks)
            if not expired:
                raise
            raise self._expired(
                kind, what, limit, spec, "waiting for the first content"
            ) from TimeoutError()
        except BaseException:
            watch.stop()
            await aclose_if_possible(chunks)
            raise
        finally:
            watch.disarm()
        if not output and not self._finish_optional(spec) and not _any_finish(buffered):
            watch.stop()
            # A bare [DONE] or a clean close before any content and without a finish_reason:
            # nothing was answered (llama.cpp's server ends a request it interrupted this way).
            raise ProviderConnectionError(
                "the stream ended before any content and without a finish_reason",
                provider=spec.provider,
                model=spec.model,
                code=INCOMPLETE_STREAM,
            )
        return _Opened(chunks, buffered, self._elapsed_ms(started), watch)

    def _finish_optional(self, spec: ModelSpec) -> bool:
        setting = self._provider_setting(spec)
        return setting is not None and setting.allow_missing_finish_reason

    def _interrupted(
        self, spec: ModelSpec, delivered: Delivered, error: BaseException
    ) -> StreamInterruptedError:
        self.info.model, self.info.provider = spec.id, spec.provider
        self.info.latency_ms = self._elapsed_ms(self.started)
        self._finish_span(error)
        return StreamInterruptedError(
            f"stream from {spec.id} broke after delivering output: {error}",
            partial_text="".join(delivered.text_parts),
            partial_reasoning="".join(delivered.reasoning_parts),
            route=self.info,
        )

    def _seam_trimmer(self, spec: ModelSpec, delivered: Delivered) -> SeamTrimmer | None:
        """For an ``instruction`` continuation: what trims the text repeated at the seam."""
        text = delivered.text_parts
        if text and _continuation_method(self.env.provider_for(spec)) == "instruction":
            return SeamTrimmer("".join(text))
        return None

    def _kept_after_finish(
        self, spec: ModelSpec, progress: StreamProgress, error: ProviderError
    ) -> bool:
        """Whether *error* ends an answer whose finish_reason already arrived (a success)."""
        if not progress.finished or isinstance(error, DeadlineExceededError):
            return False
        self.info.notes.append(f"{spec.id}: {error.code or 'error'} after finish_reason; kept")
        return True

    def _require_finished(self, spec: ModelSpec, progress: StreamProgress) -> None:
        """A stream that ended without its finish_reason is incomplete (unless allowed)."""
        if not progress.finished and not self._finish_optional(spec):
            raise ProviderConnectionError(
                "the stream ended without a finish_reason (bare [DONE] or closed connection): "
                "the answer may be cut short",
                provider=spec.provider,
                model=spec.model,
                code=INCOMPLETE_STREAM,
            )

    async def stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:  # noqa: C901
        """Run the plan as a stream; yields chunks exactly once each."""
        # One generator (no wrapper around an inner one, no relay generator per attempt): the
        # per-chunk cost of the stream is mostly generator hops, so this stays one function.
        try:
            plan = self._plan_specs()
            delivered = self.delivered
            request = self.request
            index = 0
            while index < len(plan):
                spec = plan[index]
                index += 1
                outcome = await self._try_candidate(spec, request, self._open_stream)
                if outcome is None:
                    index = await self._moved_on(plan, index)
                    continue
                opened, lease = outcome.value, outcome.lease
                if self.info.ttft_ms is None:
                    self.info.ttft_ms = self._elapsed_ms(self.started)
                provider = self.env.provider_for(spec)
                prefix = "".join(delivered.text_parts)
                progress = StreamProgress(delivered)
                ended = False  # the attempt reached a verdict: no early close
                try:
                    # Relay this attempt's chunks, each within the stream's clocks, right here
                    # rather than through a generator of its own: one layer fewer per chunk.
                    # It ends normally only when the answer is complete: its finish_reason
                    # arrived (a lost connection after it is still a success), or the provider
                    # is marked as omitting it; otherwise the ProviderError that ended it.
                    watch = opened.watch
                    trimmer = self._seam_trimmer(spec, delivered)
                    next_chunk = opened.chunks.__anext__
                    try:
                        for first in opened.buffered:
                            out = progress.take(trimmer.trim(first) if trimmer else first)
                            if out is not None:
                                yield out
                        while True:
                            # Each chunk within the stream's clocks (see _Watchdog), awaited
                            # here: no coroutine per chunk between the provider and the caller.
                            limit, by_idle = self._chunk_limit(spec)
                            watch.arm(limit)
                            try:
                                chunk = await next_chunk()
                            except StopAsyncIteration:
                                break
                            except asyncio.CancelledError:
                                if not watch.timed_out():
                                    raise
                                raise self._chunk_expired(spec, limit, by_idle) from TimeoutError()
                            except TimeoutError as exc:
                                raise self._chunk_expired(spec, limit, by_idle) from exc
                            finally:
                                watch.disarm()
                            out = progress.take(trimmer.trim(chunk) if trimmer else chunk)
                            if out is not None:
                                yield out
                    except ProviderError as error:
                        if not self._kept_after_finish(spec, progress, error):
                            raise
                    finally:
                        watch.stop()
                    self._require_finished(spec, progress)
                    ended = True
                except ProviderError as error:
                    ended = True
                    resumed = await self._after_interruption(
                        spec,
                        provider,
                        lease,
                        opened,
                        progress,
                        delivered,
                        error,
                        prefix,
                        has_next=index < len(plan),
                    )
                    if resumed is None:
                        raise self._interrupted(spec, delivered, error) from error
                    request = resumed
                    if self.env.hooks.on_fallback is not None:
                        await call_hook(self.env.hooks.on_fallback, spec.id, plan[index].id, error)
                    continue
                except Exception as error:
                    ended = True  # a provider bug mid-stream: the caller still learns what it got
                    lease.release()
                    await self._record(spec, "interrupted", lease.started, error=error)
                    raise self._interrupted(spec, delivered, error) from error
                finally:
                    opened.watch.stop()
                    await aclose_if_possible(opened.chunks)
                    if not ended:
                        await self._closed_early(spec, provider, lease, opened, progress, prefix)
                closing = await self._stream_succeeded(
                    spec, provider, lease, opened, progress, prefix
                )
                if closing is not None:
                    yield closing
                return
            self._raise_stream_failed(delivered)
        except BaseException as error:
            self._finish_span(None if isinstance(error, GeneratorExit) else error)
            raise

    def _raise_stream_failed(self, delivered: Delivered) -> NoReturn:
        failure = self._all_failed()
        if delivered.any_output:
            # Output already reached the caller: say exactly what, never just "all failed".
            raise StreamInterruptedError(
                "stream broke and no candidate could resume it",
                partial_text="".join(delivered.text_parts),
                partial_reasoning="".join(delivered.reasoning_parts),
                route=self.info,
            ) from failure
        raise failure

    async def _after_interruption(
        self,
        spec: ModelSpec,
        provider: Provider,
        lease: Lease,
        opened: _Opened,
        progress: StreamProgress,
        delivered: Delivered,
        error: ProviderError,
        prefix: str,
        *,
        has_next: bool,
    ) -> ChatRequest | None:
        """Settle an attempt that broke mid-stream (charged for what it delivered); return the
        continuation request when the stream may resume on the next candidate, else ``None``."""
        usage = progress.usage or self._estimate_usage(spec, "".join(progress.text), prefix)
        if self._obs is not None:
            self._obs.streamed(opened.buffered, progress, usage, prefix)
        self._note_failure(lease, provider, error, self._cost(spec, usage))
        await self._record(spec, "interrupted", lease.started, error=error, ttft_ms=opened.ttft_ms)
        self.errors.append(error)
        if isinstance(error, DeadlineExceededError) or not self.request.resume:
            return None
        if not has_next or not delivered.resumable():
            return None
        self.info.notes.append(f"resuming on the next candidate after {spec.id} failed mid-stream")
        self.env.telemetry.resumed(self._obs, spec.id, error)
        return self.request.continued("".join(delivered.text_parts))

    async def _stream_succeeded(
        self,
        spec: ModelSpec,
        provider: Provider,
        lease: Lease,
        opened: _Opened,
        progress: StreamProgress,
        prefix: str,
    ) -> ChatCompletionChunk | None:
        """Settle a complete stream; return its closing usage chunk (reported or estimated)."""
        usage = progress.usage
        estimated = None
        if usage is None:
            estimated = self._estimate_usage(spec, "".join(progress.text), prefix)
        closing = progress.end(estimated)
        if closing is not None:
            usage = closing.usage
        self._note_reachable(spec, provider)
        generation_s = max(self._elapsed_ms(lease.started) - opened.ttft_ms, 0.0) / 1000.0
        self.env.health.stats(spec.id).observe(
            opened.ttft_ms, usage.completion_tokens if usage else 0, generation_s
        )
        if self._obs is not None:
            self._obs.streamed(opened.buffered, progress, usage, prefix)
        lease.succeed(self._cost(spec, usage))
        if prefix:
            # Only a continuation that finished makes the stream "resumed".
            method = _continuation_method(provider)
            self.info.resumed, self.info.resumed_by = True, method
            self.info.notes.append(f"resumed on {spec.id} by {method} continuation")
        await self._record(spec, "ok", lease.started, ttft_ms=opened.ttft_ms)
        await self._succeeded(spec, usage)
        return closing

    async def _closed_early(
        self,
        spec: ModelSpec,
        provider: Provider,
        lease: Lease,
        opened: _Opened,
        progress: StreamProgress,
        prefix: str,
    ) -> None:
        """The caller closed or cancelled the stream before the provider's stream ended.

        If the answer had already finished (finish reason or usage arrived), this is a
        success. Otherwise tokens were made and not all read: charge what was delivered,
        record the attempt as cancelled, and tell hooks and telemetry.
        """
        usage = progress.usage
        if self._obs is not None:
            self._obs.streamed(opened.buffered, progress, usage, prefix)
        if progress.finished or usage is not None:
            self._note_reachable(spec, provider)
            lease.succeed(self._cost(spec, usage))
            await self._record(spec, "ok", lease.started, ttft_ms=opened.ttft_ms)
            await self._succeeded(spec, usage)
            return
        estimated = self._estimate_usage(spec, "".join(progress.text), prefix)
        lease.charge(self._cost(spec, estimated))
        self.info.model, self.info.provider = spec.id, spec.provider
        self.info.latency_ms = self._elapsed_ms(self.started)
        await self._record(spec, "cancelled", lease.started, ttft_ms=opened.ttft_ms)
        self._finish_span(None)


def _continuation_method(provider: Provider) -> str:
    """How *provider* continues a partial answer: its dialect's ``continuation_method``
    (``partial``, ``prefix``, ``raw``, ``instruction``); a custom provider without one is
    assumed to take the assistant prefix as it is."""
    method = getattr(provider, "continuation_method", None)
    return method if isinstance(method, str) else "prefill"


def _any_finish(chunks: list[ChatCompletionChunk]) -> bool:
    return any(c.finish_reason is not None for chunk in chunks for c in chunk.choices)
