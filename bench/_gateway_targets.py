"""The processes ``bench/gateway.py`` measures: the fake upstream, genrouter's gateway, LiteLLM.

Each runs in its own process, started here and stopped at the end: the fast fake upstream
(``bench/_gateway_upstream.py``), ``python -m genrouter serve`` with a config of one model on
that upstream, and LiteLLM's proxy from its own virtual environment (``litellm --config``,
one model on the same upstream as an OpenAI-compatible ``api_base``). Both gateways get the
same worker count, no keys (loopback only), and no per-request logging.

The CPU probe sums user + system time over a process and all its descendants (uvicorn's
workers), from ``/proc``, so a target's CPU time per answer can be read next to its throughput:
CPU time is much less disturbed by other work on the machine than wall-clock time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_SCRIPT = Path(__file__).resolve().parent / "_gateway_upstream.py"
DEFAULT_LITELLM_VENV = "/work/venvs/litellm"
DEFAULT_SERVER_EXTRAS = "/work/venvs/gwbench-server"
MODEL = "bench-model"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    """One thing the load generator can be pointed at."""

    name: str
    host: str
    port: int
    path: str
    model: str
    process: subprocess.Popen[bytes] | None = None
    version: str = ""
    stack: str = ""
    log: Path | None = None
    health: str = "/health"

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the target's process tree so far."""
        return tree_cpu_seconds(self.process.pid) if self.process is not None else 0.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of *root* and every descendant, read from ``/proc``."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # it ended while we looked
        pid, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def wait_until_idle(target: Target, *, below: float = 0.05, limit_s: float = 10.0) -> None:
    """Wait until *target* uses less than *below* of a core (abandoned work has drained)."""
    deadline = time.monotonic() + limit_s
    last = target.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = target.cpu_seconds()
        if (now - last) / 0.25 < below:
            return
        last = now


def _get(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_ready(target: Target, limit_s: float = 120.0) -> None:
    """Wait until *target* answers its health check (raises if it exits or takes too long)."""
    assert target.process is not None
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.process.returncode}")
        if _get(f"http://{target.host}:{target.port}{target.health}") == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{target.name} was not ready after {limit_s:.0f} s")


def stop(target: Target) -> None:
    """Stop the target's process (SIGTERM, then SIGKILL) if it runs."""
    process = target.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _has(python: str, module: str, env: dict[str, str]) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], env=env, check=False).returncode == 0


def _stack(python: str, env: dict[str, str]) -> str:
    loop = "uvloop" if _has(python, "uvloop", env) else "asyncio"
    http = "httptools" if _has(python, "httptools", env) else "h11"
    return f"uvicorn, {loop} loop, {http} parser"


def start_upstream(chunks: int, gap_ms: float) -> Target:
    """The fake upstream, on a free port."""
    command = [sys.executable, str(UPSTREAM_SCRIPT), "--port", "0", "--chunks", str(chunks)]
    process = subprocess.Popen([*command, "--gap-ms", str(gap_ms)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"the fake upstream did not start (printed {url!r})")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    stack = "raw asyncio Protocol, prepared answers"
    return Target("direct", "127.0.0.1", port, "/v1/chat/completions", MODEL, process, "", stack)


def start_genrouter(
    upstream: Target,
    workdir: Path,
    workers: int,
    extras: str,
    checkout: str | Path = ROOT,
    extra_config: dict[str, Any] | None = None,
) -> Target:
    """Launch ``genrouter serve`` from *checkout* in front of *upstream* (see wait_ready).

    *extra_config* is merged into the config's top level (e.g. a ``pool`` table).
    """
    config: dict[str, Any] = {
        "providers": {
            "up": {
                "type": "openai_compatible",
                "base_url": f"http://127.0.0.1:{upstream.port}/v1",
                "api_key": "${GWBENCH_UPSTREAM_KEY}",
            }
        },
        "models": {f"up/{MODEL}": {}},
    }
    config.update(extra_config or {})
    path = workdir / "genrouter.json"
    path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ, GWBENCH_UPSTREAM_KEY="sk-bench-fake")
    paths = [str(checkout), *([extras] if extras and Path(extras).is_dir() else [])]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    port = free_port()
    log = workdir / "genrouter.log"
    # The CLI's own entry point (what the ``genrouter`` script runs), from *checkout*.
    launch = "import sys; from genrouter.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", launch, "serve", "--config", str(path)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        # cwd elsewhere: ``-c`` puts the working directory first on sys.path.
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    version = subprocess.run(
        [sys.executable, "-c", "import genrouter; print(genrouter.__version__)"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    version += f" ({commit})" if commit else ""
    target = Target("genrouter", "127.0.0.1", port, "/v1/chat/completions", f"up/{MODEL}")
    target.process, target.version, target.log = process, version, log
    target.stack, target.health = _stack(sys.executable, env), "/healthz"
    return target


def litellm_venv(given: str | None) -> Path:
    """The LiteLLM virtual environment: *given*, ``$GWBENCH_LITELLM_VENV``, or the default."""
    return Path(given or os.environ.get("GWBENCH_LITELLM_VENV") or DEFAULT_LITELLM_VENV)


LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{port}/v1
      api_key: sk-bench-fake
litellm_settings:
  drop_params: true
  set_verbose: false
  request_timeout: 600
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
  # No keys, like genrouter's gateway here (loopback only).
  dangerously_permit_weak_or_unset_master_key: true
"""


def start_litellm(upstream: Target, workdir: Path, workers: int, venv: Path) -> Target:
    """Launch LiteLLM's proxy from *venv* in front of *upstream* (raises if not installed)."""
    executable = venv / "bin" / "litellm"
    if not executable.exists():
        raise FileNotFoundError(
            f"no LiteLLM at {executable}: python -m venv {venv} && "
            f"{venv}/bin/pip install 'litellm[proxy]' httptools "
            "(or pass --litellm-venv / set GWBENCH_LITELLM_VENV)"
        )
    path = workdir / "litellm.yaml"
    path.write_text(LITELLM_CONFIG.format(model=MODEL, port=upstream.port))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Offline: the bundled model-cost map instead of a fetch from GitHub; log errors only.
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    env.pop("LITELLM_MASTER_KEY", None)
    port = free_port()
    log = workdir / "litellm.log"
    command = [str(executable), "--config", str(path), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    python = str(venv / "bin" / "python")
    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    target = Target("litellm", "127.0.0.1", port, "/v1/chat/completions", MODEL)
    target.process, target.version, target.log = process, version, log
    target.stack, target.health = _stack(python, env), "/health/liveliness"
    return target


def workdir() -> Path:
    """A fresh temporary directory for configs and logs."""
    return Path(tempfile.mkdtemp(prefix="gwbench-"))
