"""The ``genrouter`` command: chat, list models, explain routing.

::

    genrouter chat "What is the capital of Japan?"      # streams an answer, says who answered
    echo "Summarise this" | genrouter chat --explain    # reads stdin; shows the decision first
    genrouter models                                    # the catalog, and what is usable here
    genrouter models --refresh                          # first re-read the providers' model lists
    genrouter route --explain "Describe this" --image cat.png

The answer goes to stdout; everything about it (route, progress, errors) goes to stderr, so
``genrouter chat ... > answer.txt`` captures only the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from genrouter.catalog import ModelSpec
from genrouter.client import AsyncClient
from genrouter.errors import GenRouterError
from genrouter.routing.explain import render_route_info, render_table
from genrouter.types import RouteDecision

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genrouter", description="One client for many language models, with explained routing."
    )
    parser.add_argument(
        "--config", help="config file (default: $GENROUTER_CONFIG or ./genrouter.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add_request_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("prompt", nargs="*", help="the prompt; '-' or nothing reads stdin")
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
    chat.add_argument("--quiet", "-q", action="store_true", help="print only the answer")

    route = sub.add_parser("route", help="dry run: show the routing decision, call nothing")
    add_request_args(route)
    route.add_argument("--explain", action="store_true", help="(the default) explain the decision")

    models = sub.add_parser("models", help="list the catalog and what is usable here")
    models.add_argument(
        "--refresh",
        action="store_true",
        help="first read each keyed provider's model list into the local cache",
    )
    return parser


def _read_prompt(words: Sequence[str], stdin: TextIO) -> str:
    if words and list(words) != ["-"]:
        return " ".join(words)
    if stdin.isatty():
        raise SystemExit("genrouter: give a prompt, or pipe one on stdin")
    text = stdin.read().strip()
    if not text:
        raise SystemExit("genrouter: the prompt on stdin is empty")
    return text


def _request(args: argparse.Namespace, stdin: TextIO) -> dict[str, Any]:
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
            raise SystemExit("genrouter: --tag takes KEY=VALUE")
        params["route_metadata"] = {key: value for key, _, value in pairs}
    return params


class _Progress:
    """Shows a local model loading: a line per stage and a ticking clock while it loads."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, event: Any) -> None:
        stage = getattr(event, "stage", "")
        model = getattr(event, "model", "")
        if stage == "loading":
            size = getattr(event, "size_bytes", None)
            mb = f" ({size / 1e6:.0f} MB)" if size else ""
            self._err.write(f"loading {model}{mb} ")
            self._err.flush()
            self._start_ticker()
        elif stage == "ready":
            self._stop.set()
            self._err.write(f"\rloaded {model} in {getattr(event, 'elapsed_s', 0.0):.1f}s\n")
            self._err.flush()
        elif stage == "resolving":
            self._err.write(f"finding the model file for {model}...\n")
            self._err.flush()

    def _start_ticker(self) -> None:
        if not self._err.isatty():
            return
        started = time.monotonic()

        def tick() -> None:
            while not self._stop.wait(0.5):
                self._err.write(f"\rloading... {time.monotonic() - started:.0f}s ")
                self._err.flush()

        self._ticker = threading.Thread(target=tick, daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()


def _why(decision: RouteDecision) -> str:
    """One line on why the first planned model was chosen."""
    skipped = [c for c in decision.candidates if not c.eligible]
    first = decision.plan[0] if decision.plan else "nothing"
    reasons = "; ".join(f"{c.model}: {c.excluded_because}" for c in skipped[:4])
    return f"chose {first} ({decision.objective} order)" + (
        f" — skipped {reasons}" if reasons else ""
    )


async def _preload_first(client: AsyncClient, decision: RouteDecision, err: TextIO) -> None:
    """Load a local first choice with visible progress rather than a silent pause."""
    if not decision.plan:
        return
    spec = client.model_spec(decision.plan[0])
    if spec is None or not spec.local:
        return
    provider = client.provider(spec.provider)
    preload = getattr(provider, "preload", None)
    if preload is None:
        return
    progress = _Progress(err)
    try:
        await preload(spec, progress=progress)
    finally:
        progress.close()


async def _chat(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    params = _request(args, stdin)
    async with AsyncClient(args.config) as client:
        decision = client.route(**params)
        if args.explain:
            err.write(decision.explain() + "\n\n")
        await _preload_first(client, decision, err)
        if args.no_stream:
            response = await client.chat.completions.create(**params)
            message = response.choices[0].message
            if message.reasoning_content and not args.quiet:
                err.write(f"[reasoning]\n{message.reasoning_content}\n[/reasoning]\n")
            out.write((message.content or "") + "\n")
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
            route = stream.route
        if route is not None and not args.quiet:
            err.write("\n" + render_route_info(route) + "\n")
            if route.decision is not None:
                err.write(_why(route.decision) + "\n")
    return 0


async def _route(args: argparse.Namespace, out: TextIO, stdin: TextIO) -> int:
    params = _request(args, stdin)
    async with AsyncClient(args.config) as client:
        out.write(client.route(**params).explain() + "\n")
    return 0


async def _models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async with AsyncClient(args.config) as client:
        if args.refresh:
            report = await client.refresh_models()
            err.write(report.summary() + "\n")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genrouter`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "chat":
            return asyncio.run(_chat(args, out, err, sys.stdin))
        if args.command == "route":
            return asyncio.run(_route(args, out, sys.stdin))
        return asyncio.run(_models(args, out, err))
    except GenRouterError as exc:
        err.write(f"genrouter: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("\ngenrouter: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
