"""The Redis backend's I/O thread: an event loop of its own, redis-py's asyncio client, and
one queue of jobs run in order, whatever is queued together in one pipeline."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from genrouter.state._lease import FLUSH_S
from genrouter.state._scripts import BUDGET, CLAIM, FAILURE, LATENCY

if TYPE_CHECKING:
    from genrouter.state.redis import RedisBackend

__all__ = ["Build", "IOThread", "Job", "Parse"]

Build = Callable[[Any], None]
Parse = Callable[[list[Any]], Any]


@dataclass(slots=True, eq=False)
class Job:
    build: Build  # adds its commands to the batch's pipeline (on the I/O thread)
    parse: Parse  # their replies -> the job's answer (on the I/O thread)
    future: Future[Any]
    failed: Callable[[], None] | None = None  # the batch failed: undo what build took
    abandoned: Callable[[Any], None] | None = None  # nobody waits any more: undo the answer
    # At most one serial job per pipeline: its build reads state that an earlier serial
    # job's answer changes (a budget job sends the lease it holds, and a second one built
    # before the first's grant was parsed would overwrite that grant on Redis).
    serial: bool = False


class IOThread:
    """A thread running an event loop with the asyncio Redis client and one job queue."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        # Jobs handed over by other threads, moved to the queue by the ticker or by wake():
        # a fire-and-forget job wakes nothing, so the request path never hands the GIL to
        # this thread just to queue an outcome (measured: that cost ~5 ms a time here).
        self.outbox: collections.deque[Job] = collections.deque()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="genrouter-redis", daemon=True)
        self.thread.start()
        self.ready.wait(5.0)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        backend = self.backend
        config = backend._config
        assert config.url is not None
        client = aredis.Redis.from_url(
            config.url,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        scripts = [client.register_script(s) for s in (FAILURE, CLAIM, BUDGET, LATENCY)]
        backend._shas = [s.sha for s in scripts]
        ticker = asyncio.ensure_future(self._tick())
        self.ready.set()
        loaded = False
        waiting: collections.deque[Job] = collections.deque()  # queued, not yet in a batch
        stop = False
        try:
            while waiting or not stop:
                if not waiting:
                    first = await self.queue.get()
                    if first is None:
                        break
                    waiting.append(first)
                while not stop and not self.queue.empty():
                    more = self.queue.get_nowait()
                    if more is None:
                        stop = True
                    else:
                        waiting.append(more)
                jobs = [waiting.popleft()]
                serial = jobs[0].serial
                while waiting and not (serial and waiting[0].serial):
                    serial = serial or waiting[0].serial
                    jobs.append(waiting.popleft())
                if not loaded and not backend._down():
                    loaded = await self._load(client, scripts)
                loaded = await self._execute(client, jobs) and loaded
        finally:
            ticker.cancel()
            await client.aclose()

    async def _load(self, client: aredis.Redis, scripts: list[Any]) -> bool:
        try:
            pipe = client.pipeline(transaction=False)
            for script in scripts:
                pipe.script_load(script.script)
            await asyncio.wait_for(pipe.execute(), self.backend._bound_s)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            self.backend._mark_down(exc)
            return False
        return True

    async def _execute(self, client: aredis.Redis, jobs: list[Job]) -> bool:
        """Run *jobs* as one pipeline; ``False`` when a script was missing (reload them)."""
        backend = self.backend
        if backend._down():
            for job in jobs:
                _resolve(job, None)
            return True
        pipe = client.pipeline(transaction=False)
        spans = []
        for job in jobs:
            start = len(pipe)
            job.build(pipe)
            spans.append((start, len(pipe)))
        try:
            replies = await asyncio.wait_for(pipe.execute(raise_on_error=False), backend._bound_s)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            backend._mark_down(exc)
            for job in jobs:
                if job.failed is not None:
                    job.failed()
                _resolve(job, None)
            return True
        backend._mark_up()
        scripts_ok = True
        for job, (start, end) in zip(jobs, spans, strict=True):
            part = replies[start:end]
            bad = [r for r in part if isinstance(r, Exception)]
            if bad:
                scripts_ok = scripts_ok and not any(isinstance(r, NoScriptError) for r in bad)
                if job.failed is not None:
                    job.failed()
                _resolve(job, None)
            else:
                _resolve(job, job.parse(part))
        return scripts_ok

    async def _tick(self) -> None:
        interval = max(min(self.backend._config.cache_s / 2, FLUSH_S), 0.01)
        while True:
            await asyncio.sleep(interval)
            self._drain()
            for job in self.backend._housekeeping():
                self.queue.put_nowait(job)
            self._drain()

    def _drain(self) -> None:
        while self.outbox:
            self.queue.put_nowait(self.outbox.popleft())

    def submit(self, job: Job) -> None:
        """Queue *job*; it runs at the next tick, or at once after :meth:`wake`."""
        self.outbox.append(job)

    def wake(self) -> None:
        """Run what is queued now (a caller waits for an answer)."""
        if threading.get_ident() == self.thread.ident:
            self._drain()
        else:
            self.loop.call_soon_threadsafe(self._drain)

    def _stop_now(self) -> None:
        self._drain()
        self.queue.put_nowait(None)

    def stop(self, timeout_s: float) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._stop_now)
        except RuntimeError:  # the loop closed meanwhile
            return
        self.thread.join(timeout_s)


def _resolve(job: Job, value: Any) -> None:
    try:
        job.future.set_result(value)
    except InvalidStateError:  # the waiter gave up (cancelled the future)
        if job.abandoned is not None and value is not None:
            job.abandoned(value)
