"""The ``genrouter`` command: chat, list models, explain routing.

::

    genrouter chat "What is the capital of Japan?"      # streams an answer, says who answered
    git diff | genrouter chat "Review this diff"        # piped text first, then the prompt
    genrouter chat --json "Hi" | jq -r '.choices[0].message.content'
    genrouter models --json                             # the catalog, and what is usable here
    genrouter models --refresh                          # first re-read the providers' model lists
    genrouter route --explain "Describe this" --image cat.png
    genrouter serve --config gateway.toml               # the OpenAI-compatible gateway

The answer goes to stdout; everything about it (route, progress, errors, logs) goes to
stderr, so ``genrouter chat ... > answer.txt`` captures only the answer. docs/cli.md has the
full reference: the prompt rule, the ``--json`` shapes and the exit codes below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from genrouter._version import __version__
from genrouter.errors import (
    BudgetExceededError,
    ConfigError,
    GenRouterError,
    InvalidRequestError,
    MediaError,
    NoCandidateError,
)

if TYPE_CHECKING:
    from genrouter.catalog import ModelSpec
    from genrouter.client import AsyncClient

# The rest of genrouter (pydantic models, the client) loads when a command runs, so that
# ``genrouter --version`` and ``--help`` answer at once.

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_MODEL",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]

#: The answer came back (``route``: a plan exists; ``models``: the list was printed).
EXIT_OK: Final = 0
#: The request was sent and failed: every candidate failed, a provider error, a broken stream.
EXIT_FAILED: Final = 1
#: Bad arguments, a bad configuration, or a request no model could accept as written.
EXIT_USAGE: Final = 2
#: Nothing could be tried: no model is available (no key, no local model) or the budget is spent.
EXIT_NO_MODEL: Final = 3
#: Interrupted with Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130
#: stdout was closed before the answer ended, e.g. ``genrouter chat ... | head`` (128 + SIGPIPE).
EXIT_BROKEN_PIPE: Final = 141


class _UsageError(Exception):
    """A command-line mistake (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genrouter",
        description="One client for many language models, with explained routing.",
        epilog=(
            "exit status: 0 ok, 1 the request failed, 2 usage or config error, "
            "3 no model available, 130 interrupted, 141 stdout closed early. "
            "More in docs/cli.md."
        ),
    )
    parser.add_argument("--version", action="version", version=f"genrouter {__version__}")
    parser.add_argument(
        "--config", help="config file (default: $GENROUTER_CONFIG or ./genrouter.toml)"
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="count",
        default=0,
        help="log to stderr: -v genrouter's info and llama.cpp's warnings, -vv everything",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add_verbose(p: argparse.ArgumentParser) -> None:
        # `genrouter chat -v ...` works as well as `genrouter -v chat ...`.
        p.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            dest="sub_verbose",
            help="see genrouter -h",
        )

    def add_request_args(p: argparse.ArgumentParser) -> None:
        add_verbose(p)
        p.add_argument(
            "prompt",
            nargs="*",
            help="the prompt; text piped on stdin comes first, then these words ('-': stdin only)",
        )
        target = p.add_mutually_exclusive_group()
        target.add_argument("--model", "-m", help="a model id or alias (default: route by rules)")
        target.add_argument("--route", "-r", help="a configured route name")
        p.add_argument("--system", "-s", help="a system prompt")
        p.add_argument("--image", action="append", default=[], help="attach an image (path/URL)")
        p.add_argument("--max-tokens", type=int, help="cap on output tokens")
        p.add_argument("--temperature", type=float)
        p.add_argument(
            "--tag",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="routing metadata for rules, e.g. --tag tier=free",
        )

    chat = sub.add_parser("chat", help="send a prompt and stream the answer")
    add_request_args(chat)
    chat.add_argument("--explain", action="store_true", help="print the routing decision first")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the answer (errors still go to stderr)",
    )
    chat.add_argument(
        "--json", action="store_true", help="print the whole completion as one JSON object"
    )

    route = sub.add_parser("route", help="dry run: show the routing decision, call nothing")
    add_request_args(route)
    route.add_argument("--explain", action="store_true", help="(the default) explain the decision")
    route.add_argument("--json", action="store_true", help="print the decision as JSON")

    models = sub.add_parser("models", help="list the catalog and what is usable here")
    models.add_argument(
        "--refresh",
        action="store_true",
        help="first read each keyed provider's model list into the local cache",
    )
    add_verbose(models)
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    _add_serve(sub, add_verbose)
    return parser


def _add_serve(sub: Any, add_verbose: Any) -> None:
    serve = sub.add_parser(
        "serve", help="run the OpenAI-compatible gateway (pip install 'genrouter[server]')"
    )
    add_verbose(serve)
    serve.add_argument(
        "--config", dest="serve_config", metavar="FILE", help="config file, with a [gateway] table"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    serve.add_argument(
        "--hash-key",
        action="store_true",
        help="read a gateway key on stdin, print its hash for [[gateway.keys]], and exit",
    )
    serve.add_argument(
        "--new-key",
        action="store_true",
        help="print a new random gateway key and its hash, and exit",
    )


def _serve(args: argparse.Namespace, out: TextIO, stdin: TextIO | None) -> int:
    from genrouter.server.settings import hash_key, new_key

    if args.new_key:
        key = new_key()
        out.write(f"key:  {key}\nhash: {hash_key(key)}\n")
        return EXIT_OK
    if args.hash_key:
        line = (stdin.readline() if stdin is not None else "").strip()
        if not line:
            raise _UsageError("--hash-key reads the key on stdin (echo -n KEY | ...)")
        out.write(hash_key(line) + "\n")
        return EXIT_OK
    config = args.serve_config or args.config or os.environ.get("GENROUTER_CONFIG")
    if not config:
        raise _UsageError("serve needs --config FILE (or $GENROUTER_CONFIG)")
    from genrouter.server.run import serve

    serve(config, host=args.host, port=args.port, workers=args.workers)
    return EXIT_OK


# -- the prompt -------------------------------------------------------------------------------


def _piped_text(stdin: TextIO | None) -> str | None:
    """What was piped on stdin, or ``None`` when stdin is a terminal, closed or unreadable."""
    if stdin is None or stdin.closed:
        return None
    try:
        if stdin.isatty():
            return None
        text = stdin.read()
    except (OSError, ValueError):  # e.g. a test runner's stand-in stdin that refuses reads
        return None
    return text.strip("\r\n").rstrip()


def _read_prompt(words: Sequence[str], stdin: TextIO | None) -> str:
    """The prompt: text piped on stdin first, then the words given, a blank line apart.

    This is the convention of Simon Willison's ``llm`` (``cat notes.txt | llm "Summarise"``):
    the piped text is the material, the words are the instruction about it. ``-`` alone reads
    only stdin.
    """
    stdin_only = list(words) == ["-"]
    typed = "" if stdin_only else " ".join(words).strip()
    piped = _piped_text(stdin)
    if piped and typed:
        return f"{piped}\n\n{typed}"
    if typed or piped:
        return typed or piped or ""
    if piped is None:
        raise _UsageError("give a prompt, or pipe one on stdin")
    raise _UsageError("the prompt on stdin is empty")


def _request(args: argparse.Namespace, stdin: TextIO | None) -> dict[str, Any]:
    prompt = _read_prompt(args.prompt, stdin)
    content: Any = prompt
    if args.image:
        content = [{"type": "text", "text": prompt}] + [
            {"type": "image_url", "image_url": {"url": image}} for image in args.image
        ]
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": content})
    params: dict[str, Any] = {"model": args.model or args.route or "auto", "messages": messages}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.tag:
        pairs = [tag.partition("=") for tag in args.tag]
        if any(not sep for _, sep, _ in pairs):
            raise _UsageError("--tag takes KEY=VALUE")
        params["route_metadata"] = {key: value for key, _, value in pairs}
    return params


# -- local models: progress and llama.cpp's log ---------------------------------------------


class _Progress:
    """Shows a local model loading: a line per stage, and on a terminal a ticking clock."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._tty = err.isatty()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._open_line = False

    def _say(self, text: str) -> None:
        self._err.write(text)
        self._err.flush()

    def __call__(self, event: Any) -> None:
        stage = getattr(event, "stage", "")
        model = getattr(event, "model", "")
        if stage == "loading":
            size = getattr(event, "size_bytes", None)
            mb = f" ({size / 1e6:.0f} MB)" if size else ""
            if self._tty:
                self._say(f"loading {model}{mb} ")
                self._open_line = True
                self._start_ticker(f"loading {model}{mb}")
            else:  # a log file gets whole lines, without carriage returns
                self._say(f"loading {model}{mb}...\n")
        elif stage == "ready":
            self._stop.set()
            self._say(
                ("\r\x1b[K" if self._tty else "")  # back to the line start, erase it
                + f"loaded {model} in {getattr(event, 'elapsed_s', 0.0):.1f}s\n"
            )
            self._open_line = False
        elif stage == "resolving":
            self._say(f"finding the model file for {model}...\n")

    def _start_ticker(self, line: str) -> None:
        started = time.monotonic()

        def tick() -> None:
            while not self._stop.wait(0.5):
                self._say(f"\r{line} {time.monotonic() - started:.0f}s ")

        self._ticker = threading.Thread(target=tick, daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._open_line:  # the load failed: end the line before the error is printed
            self._say("\n")
            self._open_line = False


class _LocalLoading:
    """An ``on_attempt_start`` hook: load a local model with progress just before it is tried.

    It runs for every attempt, so a local model that is the fallback after a remote one shows
    its loading as well as a first choice does. A load that fails is left for the attempt
    itself to report, as the typed error it raises.
    """

    def __init__(self, err: TextIO, *, show_progress: bool) -> None:
        self._err = err
        self._show_progress = show_progress
        self.client: AsyncClient | None = None

    async def __call__(self, model: str, attempt: int) -> None:
        client = self.client
        spec = None if client is None else client.model_spec(model)
        if client is None or spec is None or not spec.local:
            return
        with contextlib.suppress(ImportError):  # without llama_cpp the attempt says how to fix it
            from genrouter.providers.local._logging import route_llama_log

            route_llama_log()
        preload = getattr(client.provider(spec.provider), "preload", None)
        if preload is None:
            return
        progress = _Progress(self._err) if self._show_progress else None
        try:
            await preload(spec, progress=progress)
        except GenRouterError:
            return
        finally:
            if progress is not None:
                progress.close()


@contextlib.contextmanager
def _logging_to(stream: TextIO, verbosity: int) -> Iterator[None]:
    """Log genrouter (and llama.cpp, routed there) to *stream* for one command, then undo it.

    Without ``-v`` genrouter shows its warnings and llama.cpp stays silent; ``-v`` adds
    genrouter's info and llama.cpp's warnings; ``-vv`` shows everything at debug level.
    """
    from genrouter.providers.local._logging import NATIVE_LOGGER

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    ours, native = logging.getLogger("genrouter"), logging.getLogger(NATIVE_LOGGER)
    saved = ours.level, native.level
    ours.setLevel((logging.WARNING, logging.INFO)[verbosity] if verbosity < 2 else logging.DEBUG)
    native.setLevel(
        (logging.CRITICAL + 1, logging.WARNING)[verbosity] if verbosity < 2 else logging.DEBUG
    )
    ours.addHandler(handler)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        native.setLevel(saved[1])


@contextlib.contextmanager
def _durable_stderr(stream: TextIO) -> Iterator[TextIO]:
    """A writer on *stream*'s file descriptor that survives llama-cpp-python's redirection.

    While llama-cpp-python reads a model file it points the process's descriptors 1 and 2
    at /dev/null (its ``suppress_stdout_stderr``), which would hide the loading clock and the
    ``-v`` log exactly while a big model loads. A duplicate descriptor keeps pointing at the
    terminal. Streams without a descriptor (tests' captures) are used as they are.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        yield stream
        return
    stream.flush()
    durable = open(  # noqa: SIM115 (closed below)
        os.dup(fd),
        "w",
        encoding=getattr(stream, "encoding", None) or "utf-8",
        errors="backslashreplace",
        buffering=1,
    )
    try:
        yield durable
    finally:
        with contextlib.suppress(OSError):
            durable.close()


# -- exit status ----------------------------------------------------------------------------


def _exit_code(exc: GenRouterError) -> int:
    if isinstance(exc, ConfigError | InvalidRequestError | MediaError):
        return EXIT_USAGE
    if isinstance(exc, NoCandidateError | BudgetExceededError):
        return EXIT_NO_MODEL
    return EXIT_FAILED


# -- commands -------------------------------------------------------------------------------


async def _chat(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO | None) -> int:
    from genrouter._cli_output import completion_json, write_json
    from genrouter.client import AsyncClient, AsyncHooks
    from genrouter.routing.explain import render_choice, render_route_info

    params = _request(args, stdin)
    loading = _LocalLoading(err, show_progress=not args.quiet)
    async with AsyncClient(args.config, hooks=AsyncHooks(on_attempt_start=loading)) as client:
        loading.client = client
        if args.explain:
            err.write(client.route(**params).explain() + "\n\n")
        if args.json:
            write_json(out, completion_json(await client.chat.completions.create(**params)))
            return EXIT_OK
        if args.no_stream:
            response = await client.chat.completions.create(**params)
            message = response.choices[0].message
            if message.reasoning_content and not args.quiet:
                err.write(f"[reasoning]\n{message.reasoning_content}\n[/reasoning]\n")
            out.write((message.content or "") + "\n")
            out.flush()
            route = response.route
        else:
            stream = await client.chat.completions.create(stream=True, **params)
            async with stream:
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.reasoning_content and not args.quiet:
                            err.write(choice.delta.reasoning_content)
                        if choice.delta.content:
                            out.write(choice.delta.content)
                            out.flush()
            out.write("\n")
            out.flush()
            route = stream.route
        if route is not None and not args.quiet:
            err.write("\n" + render_route_info(route) + "\n")
            if route.decision is not None:
                err.write(render_choice(route.decision, route.model) + "\n")
    return EXIT_OK


async def _route(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO | None) -> int:
    from genrouter._cli_output import DEMO_HINT, decision_json, needs_a_key_only, write_json
    from genrouter.client import AsyncClient

    params = _request(args, stdin)
    async with AsyncClient(args.config) as client:
        decision = client.route(**params)
    if args.json:
        write_json(out, decision_json(decision))
    else:
        out.write(decision.explain() + "\n")
    if decision.plan:
        return EXIT_OK
    if needs_a_key_only(decision):
        err.write(f"genrouter: {DEMO_HINT}\n")
    return EXIT_NO_MODEL


async def _models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from genrouter._cli_output import models_json, write_json
    from genrouter.client import AsyncClient
    from genrouter.routing.explain import render_table

    async with AsyncClient(args.config) as client:
        if args.refresh:
            report = await client.refresh_models()
            err.write(report.summary() + "\n")
        if args.json:
            write_json(out, models_json(client.models()))
            return EXIT_OK
        rows = []
        for status in client.models():
            spec = status.spec
            price = (
                "local"
                if spec.local
                else (
                    "?"
                    if spec.input_price is None or spec.output_price is None
                    else f"${spec.input_price:g} / ${spec.output_price:g}"
                )
            )
            rows.append(
                [
                    spec.id + (" (added by refresh)" if spec.added_by_refresh else ""),
                    ",".join(sorted(spec.input_modalities)),
                    f"{spec.context_window:,}",
                    price,
                    _price_source(spec),
                    status.lifecycle,
                    "yes" if status.usable else f"no: {status.reason}",
                ]
            )
        headers = ["model", "input", "context", "USD per 1M in / out", "price checked", "status"]
        out.write(render_table([*headers, "usable"], rows) + "\n")
    return 0


def _price_source(spec: ModelSpec) -> str:
    """When the price was checked, and ``(unverified)`` unless the vendor's page said so."""
    if spec.local or spec.input_price is None:
        return "-"
    priced = [s for s in spec.sources if {"input_price", "output_price"} & set(s.facts)]
    if not priced:
        return str(spec.price_date) if spec.price_date else "?"
    checked = max(s.checked_on for s in priced)
    return f"{checked}" + ("" if all(s.verified for s in priced) else " (unverified)")


def _discard_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on a closed pipe.

    (Python's documented recipe for SIGPIPE: https://docs.python.org/3/library/signal.html)
    """
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO | None) -> int:
    try:
        if args.command == "serve":
            return _serve(args, out, stdin)
        if args.command == "chat":
            return asyncio.run(_chat(args, out, err, stdin))
        if args.command == "route":
            return asyncio.run(_route(args, out, err, stdin))
        return asyncio.run(_models(args, out, err))
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat would
        _discard_stdout(out)
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        err.write("\ngenrouter: interrupted\n")
        return EXIT_INTERRUPTED
    except _UsageError as exc:
        err.write(f"genrouter: {exc}\n")
        return EXIT_USAGE
    except GenRouterError as exc:
        from genrouter._cli_output import error_json, render_failure, write_json

        code = _exit_code(exc)
        try:
            if getattr(args, "json", False):
                write_json(out, error_json(exc, code))
            err.write(render_failure(exc) + "\n")
        except BrokenPipeError:
            _discard_stdout(out)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genrouter`` command; returns the exit status (see docs/cli.md)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    verbosity = args.verbose + getattr(args, "sub_verbose", 0)
    with _durable_stderr(sys.stderr) as err, _logging_to(err, verbosity):
        return _run(args, sys.stdout, err, sys.stdin)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
