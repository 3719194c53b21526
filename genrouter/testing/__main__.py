"""``python -m genrouter.testing serve``: run the fake server in its own process.

Prints the OpenAI base URL (``http://127.0.0.1:PORT/v1``) on the first line of stdout, then
serves until killed. Benchmarks use it so the server's work does not share the client's CPU
time slice or event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from genrouter.testing import FakeLLMServer, Reply


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m genrouter.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a fake OpenAI-compatible API until killed")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--reply-chunks",
        type=int,
        default=None,
        metavar="N",
        help="answer every request with N content pieces instead of echoing",
    )
    serve.add_argument("--reply-text", default=None, help="answer every request with this text")
    return parser


async def _serve(server: FakeLLMServer) -> None:
    task = asyncio.create_task(server.serve_forever())
    while server.port == 0 and not task.done():
        await asyncio.sleep(0.005)
    print(server.openai_base_url, flush=True)
    await task


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m genrouter.testing``."""
    args = _parser().parse_args(argv)
    default: Reply | None = None
    if args.reply_chunks is not None:
        default = Reply(chunks=[f"tok{i} " for i in range(args.reply_chunks)])
    elif args.reply_text is not None:
        default = Reply.text(args.reply_text)
    server = FakeLLMServer(host=args.host, port=args.port, default_reply=default)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
