"""Images route to Qwen2.5-VL, text to the cheapest text model: one config, a rule, a dry run.

Against the bundled fake server (DashScope's compatible-mode wire). A local PNG is read,
checked and sent as a data URI; the server records what arrived.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import zlib
from pathlib import Path

from genrouter import AsyncClient
from genrouter.params import MessageParam
from genrouter.testing import FakeLLMServer


def tiny_png(path: Path) -> Path:
    """Write a real 2×2 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


async def main() -> None:
    with FakeLLMServer() as server, tempfile.TemporaryDirectory() as tmp:
        image = tiny_png(Path(tmp) / "red.png")
        config = {
            "providers": {
                "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url}
            },
            "routes": {
                "default": {
                    "candidates": ["dashscope/qwen-max-latest", "dashscope/qwen-max"],
                    "objective": "cost",
                },
                "vision": {
                    "candidates": [
                        "dashscope/qwen2.5-vl-72b-instruct",
                        "dashscope/qwen2.5-vl-7b-instruct",
                    ],
                    "objective": "cost",
                },
            },
            "rules": [{"name": "images", "when": {"input_modality": "image"}, "route": "vision"}],
        }
        picture: list[MessageParam] = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour is this?"},
                    {"type": "image_url", "image_url": {"url": str(image)}},
                ],
            }
        ]
        text: list[MessageParam] = [{"role": "user", "content": "Write a haiku about autumn."}]
        async with AsyncClient(config, env={"DASHSCOPE_API_KEY": "sk-example"}) as client:
            print(client.route(messages=picture).explain(), "\n")
            for messages in (text, picture):
                response = await client.chat.completions.create(messages=messages)
                assert response.route is not None
                print(f"{response.route.model}: {response.choices[0].message.content}")
        sent = server.requests[-1].body["messages"][0]["content"][1]["image_url"]["url"]
        print(f"the image travelled as {sent[:30]}... ({len(sent)} characters)")


if __name__ == "__main__":
    asyncio.run(main())
