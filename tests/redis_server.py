"""A real ``redis-server`` for the shared-state tests (Debian's package; ``.ci/run`` installs it).

Started as a separate process on a free 127.0.0.1 port with persistence off and stopped after
the session. Where ``redis-server`` or redis-py is missing the tests that need it are skipped
with the reason, unless ``GENROUTER_REQUIRE_REAL_SERVERS`` is set (CI), then they fail.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.real_servers import free_port, stop_process, unavailable

__all__ = ["RedisServer", "redis_server", "start_redis_server"]

_START_TIMEOUT_S = 15.0


@dataclass
class RedisServer:
    """A running ``redis-server`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)

    def kill(self) -> None:
        """Stop it abruptly, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def start_redis_server(tmp_dir: Path, port: int | None = None) -> RedisServer:
    """Start ``redis-server`` on *port* (a free one by default) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (apt-get install -y redis-server)")
    try:
        import redis
    except ImportError:
        unavailable("redis-py is not installed (pip install 'genrouter[redis]')")
    assert binary is not None
    port = port or free_port()
    log_path = tmp_dir / f"redis-{port}.log"
    args = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--bind", "127.0.0.1", "--dir", str(tmp_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(process, port, log_path)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited: {log_path.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(redis.RedisError, OSError):
                if client.ping():
                    return server
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail("redis-server did not answer within 15s")
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` on a free 127.0.0.1 port for the whole session."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
