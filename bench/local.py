"""Overhead of genrouter's LocalProvider over calling llama-cpp-python directly.

Both sides run the same GGUF in the same process with the same prompt and settings
(temperature 0, fixed seed, same stops, end-of-text banned so both write the same tokens);
runs alternate between the two and the medians are reported:

* decode speed: tokens/s between the first and the last token of a stream;
* time to first token, from the call to the first text;
* time to first token of an offline fallback through the router: a client whose route tries
  ``openai/gpt-6-luna`` first, on a machine whose network refuses every connection (an HTTP pool
  that fails each connect, so nothing leaves the machine), with this model as the fallback.
  The first such request pays the failed connect; later ones skip the remote model at once.

Usage::

    python bench/local.py                  # the gemma demo model
    python bench/local.py --model PATH     # any GGUF (prompted Q/A style)
    python bench/local.py --tokens 256 --runs 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from genrouter.catalog import ModelSpec, load_builtin_catalog
from genrouter.client import AsyncClient
from genrouter.config import ProviderConfig
from genrouter.providers.base import ProviderCall
from genrouter.providers.local import LocalProvider
from genrouter.providers.local._prompt import QA_STOPS
from genrouter.request import build_request

QUESTION = "Write a long story about a dragon who learns to cook."
SEED = 1234


@dataclass
class Run:
    ttft_s: float
    tokens: int
    decode_tokens_per_s: float


def _rate(tokens: int, first: float, last: float) -> float:
    return (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0


def direct_run(llm: Any, prompt: str, settings: dict[str, Any]) -> Run:
    """Stream straight from ``llama_cpp.Llama``."""
    started = time.perf_counter()
    first = last = 0.0
    pieces = 0
    for chunk in llm.create_completion(prompt, stream=True, stop=list(QA_STOPS), **settings):
        if chunk["choices"][0]["text"]:
            last = time.perf_counter()
            first = first or last
            pieces += 1
    return Run(first - started, pieces, _rate(pieces, first, last))


async def provider_run(provider: LocalProvider, call: ProviderCall) -> Run:
    """Stream through genrouter's LocalProvider."""
    started = time.perf_counter()
    first = last = 0.0
    pieces = 0
    async for chunk in provider.stream(call):
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            pieces += 1
    return Run(first - started, pieces, _rate(pieces, first, last))


def _offline_client(spec: ModelSpec) -> AsyncClient:
    """A client whose only remote candidate is unreachable, with *spec* as the fallback."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 101] Network is unreachable", request=request)

    fields = spec.model_dump(exclude={"id", "provider", "model", "aliases"}, exclude_defaults=True)
    config = {
        "models": {spec.id: fields} if spec.id == "local/bench" else {},
        "routes": {"default": {"candidates": ["openai/gpt-6-luna"], "fallbacks": [spec.id]}},
    }
    return AsyncClient(
        config,
        env={"OPENAI_API_KEY": "sk-offline-bench"},
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)),
    )


async def router_ttft(client: AsyncClient, params: dict[str, Any]) -> float:
    """Seconds from ``create(stream=True)`` to the first text, through the router."""
    started = time.perf_counter()
    stream = await client.chat.completions.create(model="default", stream=True, **params)
    first = None
    async with stream:
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
    assert stream.route.model is not None and stream.route.model != "openai/gpt-6-luna"
    return (first or time.perf_counter()) - started


def _spec(model_path: str | None) -> ModelSpec:
    demo = load_builtin_catalog().get("local/gemma-3-270m")
    if model_path is None:
        return demo
    return demo.model_copy(update={"id": "local/bench", "path": model_path, "package": None})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a GGUF file (default: the gemma demo package)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from llama_cpp import Llama

    spec = _spec(args.model).model_copy(update={"max_output_tokens": args.tokens})
    provider = LocalProvider("local", ProviderConfig(type="local"), env={})
    await provider.preload(spec)
    path = str(Path(args.model) if args.model else __import__(spec.package or "").assemble())
    llm = Llama(model_path=path, n_ctx=spec.n_ctx or spec.context_window, verbose=False)

    # Ban end-of-text and newlines so both sides write exactly --tokens tokens.
    banned = {
        llm.token_eos(),
        *llm.tokenize(b"\n", add_bos=False),
        *llm.tokenize(b"\n\n", add_bos=False),
    }
    bias = {str(t): -100.0 for t in banned}
    settings: dict[str, Any] = {
        **{k: v for k, v in spec.defaults.items()},
        "temperature": 0.0,
        "seed": SEED,
        "max_tokens": args.tokens,
        "logit_bias": {int(k): v for k, v in bias.items()},
    }
    prompt = f"Q: {QUESTION}\nA:"
    request = build_request(
        {
            "model": spec.id,
            "messages": [{"role": "user", "content": QUESTION}],
            "temperature": 0.0,
            "seed": SEED,
            "max_tokens": args.tokens,
            "logit_bias": bias,
        }
    )

    # Warm both (page cache, first-run allocations), then alternate.
    direct_run(llm, prompt, settings)
    await provider_run(provider, ProviderCall(request=request, model=spec))
    direct: list[Run] = []
    ours: list[Run] = []
    for i in range(args.runs):
        order = ("direct", "provider") if i % 2 == 0 else ("provider", "direct")
        for side in order:
            if side == "direct":
                direct.append(direct_run(llm, prompt, settings))
            else:
                ours.append(await provider_run(provider, ProviderCall(request=request, model=spec)))
    await provider.aclose()

    # Offline fallback through the router, next to direct calls made in between.
    params: dict[str, Any] = {
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0.0,
        "seed": SEED,
        "max_tokens": 8,
    }
    short = {**settings, "max_tokens": 8}
    client = _offline_client(spec)
    await client.provider("local").preload(spec)  # type: ignore[attr-defined]
    client.route(model="default", **params)  # load the tokenizers: not what is measured
    client.provider("openai")  # and build the remote provider once
    local = client.provider("local")
    warm = build_request({"model": spec.id, **params})
    await provider_run(local, ProviderCall(request=warm, model=spec))  # type: ignore[arg-type]
    first_offline = await router_ttft(client, params)
    fallback: list[float] = []
    direct_short: list[float] = []
    for _ in range(args.runs):
        direct_short.append(direct_run(llm, prompt, short).ttft_s)
        fallback.append(await router_ttft(client, params))
    await client.aclose()
    llm.close()

    def med(runs: list[Run], field: str) -> float:
        return float(statistics.median(float(getattr(r, field)) for r in runs))

    d_rate, p_rate = med(direct, "decode_tokens_per_s"), med(ours, "decode_tokens_per_s")
    d_ttft, p_ttft = med(direct, "ttft_s") * 1000, med(ours, "ttft_s") * 1000
    print(f"model: {path}")
    print(
        f"tokens per run: direct {sorted({r.tokens for r in direct})}, "
        f"provider {sorted({r.tokens for r in ours})}; runs: {args.runs} each, interleaved"
    )
    print(
        f"decode tokens/s  direct {d_rate:7.2f}   provider {p_rate:7.2f}   "
        f"ratio {p_rate / d_rate if d_rate else float('nan'):.3f}"
    )
    print(
        f"TTFT ms          direct {d_ttft:7.1f}   provider {p_ttft:7.1f}   "
        f"overhead {p_ttft - d_ttft:+.1f} ms"
    )
    d_short = statistics.median(direct_short) * 1000
    f_med = statistics.median(fallback) * 1000
    print(
        f"offline fallback TTFT ms: direct {d_short:7.1f}   via router (network marked down) "
        f"{f_med:7.1f}   overhead {f_med - d_short:+.1f} ms;  first offline request (failed "
        f"connect, then fallback) {first_offline * 1000:.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
