"""Token counting: exact tiktoken counts offline, chat overhead, Qwen, images, no network."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from genrouter.catalog import Catalog, ModelSpec, load_builtin_catalog
from genrouter.request import ChatRequest, build_request
from genrouter.tokens import (
    DEFAULT_VIDEO_FRAMES,
    TokenCount,
    TokenCounter,
    estimate_text_tokens,
    find_qwen_vocab,
    openai_image_tokens,
    qwen_vl_image_tokens,
)

DATA = Path(__file__).resolve().parent.parent / "genrouter" / "data"
SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "The quick brown fox jumps over the lazy dog. 1234567 ÷ 3 = 411522.33",
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "你好，世界！日本語のテキストも。한국어도.",
    "<|endoftext|> is just text here",
    "",
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin_catalog()


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    # Module-scoped: loading an encoding takes a few hundred milliseconds.
    return TokenCounter()


def request(*messages: dict[str, Any], **extra: Any) -> ChatRequest:
    return build_request({"model": "any", "messages": list(messages), **extra})


def png_bytes(width: int, height: int) -> bytes:
    """A valid PNG of the given size (one grey pixel row repeated), built without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# --- OpenAI encodings ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_vendored_files_match_tiktokens_published_hash(name: str) -> None:
    import tiktoken_ext.openai_public as public  # type: ignore[import-untyped]

    source = Path(public.__file__).read_text()
    digest = hashlib.sha256((DATA / f"{name}.tiktoken").read_bytes()).hexdigest()
    assert digest in source


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_counts_equal_tiktokens_own_encoding(
    name: str, counter: TokenCounter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken's official constructor, fed the vendored file through its cache, agrees."""
    import tiktoken
    import tiktoken_ext.openai_public as public

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        (DATA / f"{name}.tiktoken").read_bytes()
    )
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    official = tiktoken.Encoding(**getattr(public, name)())
    spec = ModelSpec(id="openai/m", provider="openai", model="m", tokenizer=name)
    for text in SAMPLES:
        assert counter.count_text(text, spec) == len(official.encode_ordinary(text)), text


def test_known_o200k_counts(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("gpt-4o")
    assert counter.count_text("hello world", spec) == 2
    assert counter.count_text("", spec) == 0
    assert counter.encoding_method(spec) == "tiktoken:o200k_base"


def test_openai_message_overhead(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("gpt-4o")
    one = counter.count_prompt(request({"role": "user", "content": "hello world"}), spec)
    # 3 priming the reply + 3 for the message + "user" (1) + "hello world" (2)
    assert one == TokenCount(9, "tiktoken:o200k_base")
    named = counter.count_prompt(
        request({"role": "user", "content": "hello world", "name": "bob"}), spec
    )
    assert named.tokens == one.tokens + 1 + counter.count_text("bob", spec)
    two = counter.count_prompt(
        request(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello world"},
        ),
        spec,
    )
    assert two.tokens == one.tokens + 3 + 1 + counter.count_text("Be brief.", spec)


def test_tools_add_tokens(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("gpt-4o")
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    plain = counter.count_prompt(request({"role": "user", "content": "hi"}), spec)
    with_tools = counter.count_prompt(
        request({"role": "user", "content": "hi"}, tools=[tool]), spec
    )
    assert with_tools.tokens > plain.tokens


# --- Qwen ----------------------------------------------------------------------------------

needs_qwen_vocab = pytest.mark.skipif(
    find_qwen_vocab() is None, reason="dashscope (which ships qwen.tiktoken) is not installed"
)


@needs_qwen_vocab
def test_qwen_token_ids_match_dashscopes_tokenizer(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("qwen-max")
    # Ids from dashscope.get_tokenizer("qwen-7b-chat").encode(...) for the same text.
    assert counter.count_text("system\nYou are a helpful assistant.", spec) == 8
    assert counter.encoding_method(spec) == "qwen"


@needs_qwen_vocab
def test_qwen_chatml_overhead(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("qwen-max")
    prompt = request(
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "你是谁？"},
    )
    # <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n    -> 3 + 8
    # <|im_start|>user\n你是谁？<|im_end|>\n                          -> 3 + 5
    # <|im_start|>assistant\n                                        -> 1 + 2
    assert counter.count_prompt(prompt, spec) == TokenCount(22, "qwen")


def test_without_dashscope_qwen_falls_back_to_an_estimate(catalog: Catalog) -> None:
    spec = catalog.get("qwen-max")
    result = TokenCounter(qwen_vocab=None).count_prompt(
        request({"role": "user", "content": "hello there, how are you?"}), spec
    )
    assert result.method == "estimate"
    assert 8 <= result.tokens <= 20


def test_estimate_weights_cjk() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcdefgh") == 2
    assert estimate_text_tokens("你好世界") == 4
    assert estimate_text_tokens("héllo") == 2  # 4 ASCII (1) + 1 accented (0.5)


def test_estimate_counts_a_token_per_digit() -> None:
    # Gemma, Qwen, Mistral split numbers into digits: 300 digits were 307 prompt tokens on
    # llama.cpp's server with Gemma 270M (measured 2026-12-02), estimated 82 before.
    assert estimate_text_tokens("0123456789" * 30) == 300
    assert estimate_text_tokens("price 12.50") == 6  # 7 other characters (2) + 4 digits
    assert estimate_text_tokens("約12件") == 4  # 2 CJK + 2 digits


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "model", "detail", "expected"),
    [
        ((1024, 1024), "gpt-4o", "high", 765),  # 768x768 -> 4 tiles
        ((2048, 4096), "gpt-4o", "high", 1105),  # 1024x2048 -> 768x1536 -> 6 tiles
        ((4096, 8192), "gpt-4o", "low", 85),
        ((512, 512), "gpt-4o", None, 255),
        ((512, 512), "gpt-4o-mini", "high", 2833 + 5667),
        ((1024, 1024), "o4-mini", None, 1762),  # 1024 patches x 1.72
        ((1800, 2400), "o4-mini", None, 2498),  # capped to 1452 patches x 1.72
    ],
)
def test_openai_image_rule(size: tuple[int, int], model: str, detail: Any, expected: int) -> None:
    assert openai_image_tokens(*size, model=model, detail=detail) == expected


@pytest.mark.parametrize(
    ("size", "max_tokens", "expected"),
    [
        ((280, 560), 1280, 10 * 20 + 2),  # already on the 28-pixel grid
        ((1024, 1024), 1280, 35 * 35 + 2),  # 1369 blocks > 1280 -> scaled to 980x980
        ((1024, 1024), 16384, 37 * 37 + 2),  # high resolution: 1036x1036
        ((10, 10), 1280, 4 + 2),  # raised to the 4-block minimum
    ],
)
def test_qwen_vl_image_rule(size: tuple[int, int], max_tokens: int, expected: int) -> None:
    assert qwen_vl_image_tokens(*size, max_tokens=max_tokens) == expected


def test_image_sizes_come_from_data_uris_and_files(
    counter: TokenCounter, catalog: Catalog, tmp_path: Path
) -> None:
    spec = catalog.get("qwen-vl-max")
    png = png_bytes(280, 560)
    path = tmp_path / "tall.png"
    path.write_bytes(png)
    for source in (data_uri(png), str(path), path.as_uri()):
        assert counter.image_size(source) == (280, 560)
    base = counter.count_prompt(request({"role": "user", "content": "look"}), spec).tokens
    prompt = request(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": data_uri(png)}},
                {"type": "image_url", "image_url": {"url": str(path)}},
            ],
        }
    )
    assert counter.count_prompt(prompt, spec).tokens == base + 2 * (10 * 20 + 2)


def test_pillow_jpeg_size_is_read(counter: TokenCounter, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image_module.new("RGB", (333, 222), (200, 10, 10)).save(buffer, format="JPEG")
    assert counter.image_size(data_uri(buffer.getvalue(), "image/jpeg")) == (333, 222)


def test_remote_and_unreadable_images_use_the_default_size(tmp_path: Path) -> None:
    counter = TokenCounter(image_size=(640, 480))
    assert counter.image_size("https://example.com/cat.png") == (640, 480)
    assert counter.image_size(str(tmp_path / "missing.png")) == (640, 480)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert counter.image_size(str(tmp_path / "junk.png")) == (640, 480)


def test_high_resolution_option_raises_qwen_image_tokens(
    counter: TokenCounter, catalog: Catalog
) -> None:
    spec = catalog.get("qwen-vl-max")
    part = {"type": "image_url", "image_url": {"url": data_uri(png_bytes(1024, 1024))}}
    normal = counter.count_prompt(request({"role": "user", "content": [part]}), spec)
    high = counter.count_prompt(
        request(
            {"role": "user", "content": [part]},
            provider_options={"dashscope": {"vl_high_resolution_images": True}},
        ),
        spec,
    )
    assert high.tokens - normal.tokens == (37 * 37 + 2) - (35 * 35 + 2)


def test_video_frames_count_as_images(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("qwen-vl-max")
    frame = data_uri(png_bytes(280, 280))
    text_only = counter.count_prompt(request({"role": "user", "content": "x"}), spec).tokens
    frames = counter.count_prompt(
        request(
            {
                "role": "user",
                "content": [{"type": "text", "text": "x"}, {"type": "video", "video": [frame] * 3}],
            }
        ),
        spec,
    )
    assert frames.tokens == text_only + 3 * (10 * 10 + 2)
    video_file = counter.count_prompt(
        request(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x"},
                    {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
                ],
            }
        ),
        spec,
    )
    assert video_file.tokens == text_only + DEFAULT_VIDEO_FRAMES * qwen_vl_image_tokens(1024, 1024)


def test_openai_image_detail_is_honoured(counter: TokenCounter, catalog: Catalog) -> None:
    spec = catalog.get("gpt-4o")
    url = data_uri(png_bytes(1024, 1024))

    def with_detail(detail: str) -> int:
        part = {"type": "image_url", "image_url": {"url": url, "detail": detail}}
        return counter.count_prompt(request({"role": "user", "content": [part]}), spec).tokens

    assert with_detail("high") - with_detail("low") == 765 - 85


# --- isolation and speed ------------------------------------------------------------------


def test_counting_never_touches_the_network(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("token counting tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = TokenCounter()  # loads every encoding from scratch under the patch
    prompt = request(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    )
    for name in ("gpt-4o", "qwen-vl-max", "gemma-3-270m"):
        assert fresh.count_prompt(prompt, catalog.get(name)).tokens > 0
    spec = ModelSpec(id="openai/old", provider="openai", model="old", tokenizer="cl100k_base")
    assert fresh.count_text("hello", spec) == 1


def test_counters_do_not_share_state(catalog: Catalog) -> None:
    first, second = TokenCounter(), TokenCounter(qwen_vocab=None)
    spec = catalog.get("qwen-max")
    prompt = request({"role": "user", "content": "hello"})
    assert second.count_prompt(prompt, spec).method == "estimate"
    expected = "qwen" if find_qwen_vocab() else "estimate"
    assert first.count_prompt(prompt, spec).method == expected


def test_short_prompt_counts_in_microseconds(counter: TokenCounter, catalog: Catalog) -> None:
    import time

    spec = catalog.get("gpt-4o")
    prompt = request(
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarise the plot of Hamlet in one line."},
    )
    counter.count_prompt(prompt, spec)  # load the encoding
    start = time.perf_counter()
    for _ in range(200):
        counter.count_prompt(prompt, spec)
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 1e-3  # typically ~15 µs; generous for slow CI machines
