"""Prompt token counting for routing and cost estimates, without ever touching the network.

:class:`TokenCounter` counts a :class:`~genrouter.request.ChatRequest` the way the model named
by a :class:`~genrouter.catalog.ModelSpec` would, choosing by ``spec.tokenizer``:

* ``"o200k_base"`` / ``"cl100k_base"`` (OpenAI): tiktoken over the BPE files vendored in
  ``genrouter/data`` (checked against tiktoken's published SHA-256), plus the chat overhead of
  OpenAI's cookbook (3 tokens a message, 1 a name, 3 to prime the reply). ``method`` is
  ``"tiktoken:o200k_base"``. :func:`tiktoken.get_encoding` is never called: it downloads.
* ``"qwen"`` / ``"qwen-gguf"`` (Qwen 2.5 and models built on its vocabulary): tiktoken over
  ``qwen.tiktoken`` from the optional ``dashscope`` package (found on disk; ``dashscope`` itself
  is never imported), plus the ChatML frame ``<|im_start|>role\\n…<|im_end|>\\n``. ``method``
  is ``"qwen"``. Without ``dashscope`` installed this falls back to the estimate.
* anything else: about four UTF-8 bytes a token for ASCII and one token a CJK character,
  labelled ``"estimate"``, with an ``uncertainty`` of :data:`ESTIMATE_UNCERTAINTY` (the true
  count may be that fraction higher). Routing calibrates such estimates per model from the
  counts servers report (:mod:`genrouter.routing.calibration`).

Images follow each vendor's published rule: OpenAI's tiles (``detail="low"`` is a flat base;
otherwise fit in 2048², shortest side 768, a price per 512-pixel tile) or patches (o4-mini,
GPT-4.1 mini/nano), and Qwen-VL's 28×28-pixel blocks within DashScope's pixel bounds plus 2
vision start/end tokens. Sizes come from the image header for ``data:`` URIs and local files;
remote URLs are never fetched and count as :data:`DEFAULT_IMAGE_SIZE`. Each frame of a
``{"type": "video"}`` part counts as an image; a video file counts as
:data:`DEFAULT_VIDEO_FRAMES` frames of the default size.

Counts of tools (JSON schemas) are approximate for every method: the vendors do not publish
how they render them.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from genrouter.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    TextPart,
    ToolMessage,
    VideoFramesPart,
    VideoPart,
)

if TYPE_CHECKING:
    import tiktoken

    from genrouter.catalog import ModelSpec
    from genrouter.request import ChatRequest

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_VIDEO_FRAMES",
    "ESTIMATE_UNCERTAINTY",
    "QWEN_VL_MAX_TOKENS",
    "QWEN_VL_MAX_TOKENS_HIGH_RES",
    "TokenCount",
    "TokenCounter",
    "find_qwen_vocab",
    "openai_image_tokens",
    "qwen_vl_image_tokens",
]

#: Size assumed for an image whose header cannot be read (remote URLs are never fetched).
DEFAULT_IMAGE_SIZE: Final = (1024, 1024)
#: Relative error of a tokenizer-free estimate before any calibration: the true count of
#: dense text (code, digits, unusual scripts) can be this fraction above it, or more.
ESTIMATE_UNCERTAINTY: Final = 0.5
#: Frames assumed for a video file (``video_url``), whose length is unknown without decoding.
DEFAULT_VIDEO_FRAMES: Final = 16
#: DashScope's default cap on tokens per image for Qwen2.5-VL (``max_pixels`` = 1280·28²).
QWEN_VL_MAX_TOKENS: Final = 1280
#: The cap when ``vl_high_resolution_images`` is set.
QWEN_VL_MAX_TOKENS_HIGH_RES: Final = 16384
_QWEN_VL_MIN_TOKENS: Final = 4

# tiktoken's own descriptions of the OpenAI encodings (tiktoken_ext/openai_public.py): the
# pattern, the special tokens and the SHA-256 of the rank file we vendor.
_O200K_PATTERN: Final = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN: Final = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# Qwen's pre-tokenizer (the same for Qwen 1, 2 and 2.5; dashscope's qwen_tokenizer.py).
_QWEN_PATTERN: Final = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


@dataclass(frozen=True, slots=True)
class _OpenAIEncoding:
    file: str
    sha256: str
    pattern: str
    special_tokens: dict[str, int]


_OPENAI_ENCODINGS: Final[dict[str, _OpenAIEncoding]] = {
    "o200k_base": _OpenAIEncoding(
        "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _OpenAIEncoding(
        "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

# CJK ideographs, kana and hangul: roughly one token each in every tokenizer we know.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NO_DIGITS: Final = str.maketrans("", "", "0123456789")

# How many entries of image sizes a counter remembers (keys are small; values are two ints).
_IMAGE_CACHE_SIZE: Final = 256
# Enough of a file or data URI to find the size in any PNG/GIF/WEBP and most JPEG headers.
_HEADER_BYTES: Final = 64 * 1024

Detail = Literal["auto", "low", "high"] | None
_ImageRule = Callable[[int, int, Detail], int]
_TEXT_ONLY = frozenset({"text"})


# Not frozen: one is built per candidate per request, and a frozen dataclass's __init__
# costs about twice a plain one's (object.__setattr__ per field). Nothing mutates it.
@dataclass(slots=True)
class TokenCount:
    """A prompt's token count and how it was obtained (``"tiktoken:o200k_base"``, ``"qwen"``,
    ``"estimate"``). ``uncertainty`` is the relative error to allow for: 0 for a real
    tokenizer, :data:`ESTIMATE_UNCERTAINTY` for an estimate."""

    tokens: int
    method: str
    uncertainty: float = 0.0


# --- image rules (pure) --------------------------------------------------------------------


# OpenAI tile rule: (base tokens, tokens per 512-px tile) by model-name prefix, longest first.
# gpt-4o-mini bills images at ~33x the tokens of gpt-4o, so its dollar price matches.
_OPENAI_TILE_COSTS: Final = (
    ("gpt-4o-mini", 2833, 5667),
    ("o1", 75, 150),
    ("o3", 75, 150),
)
# OpenAI patch rule (32-px patches, at most 1536, times a multiplier) by model-name prefix.
_OPENAI_PATCH_MULTIPLIERS: Final = (
    ("o4-mini", 1.72),
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
)


def openai_image_tokens(width: int, height: int, *, model: str = "", detail: Detail = None) -> int:
    """Tokens OpenAI bills for one image of *width* × *height* pixels sent to *model*.

    Tile models (GPT-4o, o1, o3): ``detail="low"`` costs the base; otherwise the image is fit
    within 2048×2048, then shrunk so its shortest side is at most 768, and each 512-pixel tile
    costs the tile price on top of the base. ``"auto"`` counts as ``"high"`` (the upper bound).
    Patch models (o4-mini, GPT-4.1 mini/nano): 32-pixel patches, at most 1536, times the
    model's multiplier.
    """
    width, height = max(width, 1), max(height, 1)
    for prefix, multiplier in _OPENAI_PATCH_MULTIPLIERS:
        if model.startswith(prefix):
            return math.ceil(_openai_patches(width, height) * multiplier)
    base, tile = 85, 170
    for prefix, tile_base, tile_price in _OPENAI_TILE_COSTS:
        if model.startswith(prefix):
            base, tile = tile_base, tile_price
            break
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return base + tile * tiles


def _openai_patches(width: int, height: int, patch: int = 32, cap: int = 1536) -> int:
    patches = math.ceil(width / patch) * math.ceil(height / patch)
    if patches <= cap:
        return patches
    # Shrink to fit the cap, then shrink further so whole patches cover the width.
    shrink = math.sqrt(patch * patch * cap / (width * height))
    shrink *= min(
        math.floor(width * shrink / patch) / (width * shrink / patch),
        math.floor(height * shrink / patch) / (height * shrink / patch),
    )
    return min(cap, math.ceil(width * shrink / patch) * math.ceil(height * shrink / patch))


def qwen_vl_image_tokens(
    width: int, height: int, *, max_tokens: int = QWEN_VL_MAX_TOKENS, block: int = 28
) -> int:
    """Tokens DashScope counts for one image sent to a Qwen-VL model.

    The image is resized so each side is a multiple of *block* (28 pixels for Qwen2.5-VL) and
    its area lies between 4 and *max_tokens* blocks (1280 by default, 16384 with
    ``vl_high_resolution_images``); each block is a token, plus 2 for the vision start and end
    markers. This is the rule DashScope documents for estimating image tokens.
    """
    width, height = max(width, 1), max(height, 1)
    min_pixels = _QWEN_VL_MIN_TOKENS * block * block
    max_pixels = max_tokens * block * block
    h_bar = max(block, round(height / block) * block)
    w_bar = max(block, round(width / block) * block)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(block, math.floor(height / beta / block) * block)
        w_bar = max(block, math.floor(width / beta / block) * block)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / block) * block
        w_bar = math.ceil(width * beta / block) * block
    return (h_bar * w_bar) // (block * block) + 2


# --- vocabulary files ---------------------------------------------------------------------


def find_qwen_vocab() -> Path | None:
    """Where the optional ``dashscope`` package keeps ``qwen.tiktoken``, or ``None``.

    Looks the package up on disk without importing it (``dashscope`` imports aiohttp, requests,
    opentelemetry and more).
    """
    try:
        spec = find_spec("dashscope")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / "qwen.tiktoken"
        if candidate.is_file():
            return candidate
    return None


def _load_ranks(path: str, expected_sha256: str | None) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` rank file (``base64-token rank`` per line).

    Read directly rather than through ``tiktoken.load.load_tiktoken_bpe``, which copies every
    file it reads into a cache directory under the system temp dir.
    """
    import base64
    import hashlib

    with open(path, "rb") as handle:
        contents = handle.read()
    if expected_sha256 and hashlib.sha256(contents).hexdigest() != expected_sha256:
        raise ValueError(f"{path} does not match its expected SHA-256 {expected_sha256}")
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


# --- the counter --------------------------------------------------------------------------

_Unset = Literal["auto"]


class TokenCounter:
    """Counts prompt tokens for a model. Make one per client; it caches what it loads.

    ``qwen_vocab`` is the path of Qwen's ``qwen.tiktoken``; ``"auto"`` (the default) finds it
    in the ``dashscope`` package when installed, ``None`` disables Qwen counting (estimates
    instead). ``image_size`` is the size assumed for images whose header cannot be read.
    """

    __slots__ = (
        "_default_size",
        "_encoders",
        "_encodings",
        "_image_sizes",
        "_qwen_vocab",
        "_role_tokens",
    )

    def __init__(
        self,
        *,
        qwen_vocab: str | os.PathLike[str] | _Unset | None = "auto",
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    ) -> None:
        self._qwen_vocab = qwen_vocab
        self._default_size = image_size
        # name -> loaded encoding, or None when it cannot be had (no dashscope).
        self._encodings: dict[str, tiktoken.Encoding | None] = {}
        self._image_sizes: OrderedDict[tuple[Any, ...], tuple[int, int] | None] = OrderedDict()
        # tokenizer name -> (method, counter), resolved once (what _encoder loads is kept anyway)
        self._encoders: dict[str, tuple[str, Callable[[str], int]]] = {}
        # (method, role) -> the role's tokens: a handful of fixed strings, counted once each
        self._role_tokens: dict[tuple[str, str], int] = {}

    # public API

    def count_prompt(self, request: ChatRequest, spec: ModelSpec) -> TokenCount:
        """The prompt tokens *request* costs on *spec*: messages, tools and media."""
        method, encode = self._encoder(spec)
        # Only user messages carry media, and needs() has seen them: text needs no rule.
        text_only = request.needs().modalities == _TEXT_ONLY
        rule = _no_media if text_only else _image_rule(spec, request)
        if method == "qwen":
            tokens = self._count_chatml(request.messages, encode, rule)
        else:
            tokens = self._count_openai_style(request.messages, encode, rule, method)
        if request.tools:
            tokens += encode(json.dumps(request.tools, separators=(",", ":"), ensure_ascii=False))
        return TokenCount(tokens, method, ESTIMATE_UNCERTAINTY if method == "estimate" else 0.0)

    def count_text(self, text: str, spec: ModelSpec) -> int:
        """Tokens of *text* alone (no chat overhead) with *spec*'s tokenizer."""
        return self._encoder(spec)[1](text)

    def encoding_method(self, spec: ModelSpec) -> str:
        """The ``method`` label counts for *spec* will carry (loads the tokenizer if needed)."""
        return self._encoder(spec)[0]

    # tokenizers

    def _encoder(self, spec: ModelSpec) -> tuple[str, Callable[[str], int]]:
        name = spec.tokenizer or ""
        found = self._encoders.get(name)
        if found is None:
            found = self._encoders[name] = self._load_encoder(name)
        return found

    def _load_encoder(self, name: str) -> tuple[str, Callable[[str], int]]:
        if name in _OPENAI_ENCODINGS:
            encoding = self._openai_encoding(name)
            return f"tiktoken:{name}", _counter(encoding)
        if name.startswith("qwen"):
            qwen = self._qwen_encoding()
            if qwen is not None:
                return "qwen", _counter(qwen)
        return "estimate", estimate_text_tokens

    def _openai_encoding(self, name: str) -> tiktoken.Encoding:
        encoding = self._encodings.get(name)
        if encoding is None:
            import tiktoken

            info = _OPENAI_ENCODINGS[name]
            ref = resources.files("genrouter").joinpath("data", info.file)
            with resources.as_file(ref) as path:
                ranks = _load_ranks(str(path), info.sha256)
            encoding = tiktoken.Encoding(
                name=name,
                pat_str=info.pattern,
                mergeable_ranks=ranks,
                special_tokens=info.special_tokens,
            )
            self._encodings[name] = encoding
        return encoding

    def _qwen_encoding(self) -> tiktoken.Encoding | None:
        if "qwen" in self._encodings:
            return self._encodings["qwen"]
        encoding = None
        path = find_qwen_vocab() if self._qwen_vocab == "auto" else self._qwen_vocab
        if path is not None:
            import tiktoken

            ranks = _load_ranks(os.fspath(path), None)
            first_special = len(ranks)  # 151643 in Qwen's vocabulary
            specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
            encoding = tiktoken.Encoding(
                name="qwen",
                pat_str=_QWEN_PATTERN,
                mergeable_ranks=ranks,
                special_tokens={tok: first_special + i for i, tok in enumerate(specials)},
            )
        self._encodings["qwen"] = encoding
        return encoding

    # message framing

    def _count_openai_style(
        self,
        messages: Iterable[Message],
        encode: Callable[[str], int],
        rule: _ImageRule,
        method: str = "",
    ) -> int:
        # OpenAI cookbook: every message costs 3 plus its role and contents, a name 1 more,
        # and the reply is primed with 3 (<|start|>assistant<|message|>).
        total = 3
        roles = self._role_tokens
        for message in messages:
            role = roles.get((method, message.role))
            if role is None:
                role = roles[(method, message.role)] = encode(message.role)
            total += 3 + role
            name = getattr(message, "name", None)
            if name:
                total += 1 + encode(name)
            total += encode(_text_of(message)) + _tool_call_tokens(message, encode)
            total += self._media_tokens(message, rule)
        return total

    def _count_chatml(
        self, messages: Iterable[Message], encode: Callable[[str], int], rule: _ImageRule
    ) -> int:
        # <|im_start|>{role}\n{content}<|im_end|>\n — 3 special/newline tokens around the text —
        # and the reply primed with <|im_start|>assistant\n.
        total = 1 + encode("assistant\n")
        for message in messages:
            text = _text_of(message)
            total += 3 + encode(f"{message.role}\n{text}")
            total += self._media_tokens(message, rule) + _tool_call_tokens(message, encode)
        return total

    # media

    def _media_tokens(self, message: Message, rule: _ImageRule) -> int:
        content = message.content
        if content is None or isinstance(content, str):
            return 0
        total = 0
        for part in content:
            if isinstance(part, ImagePart):
                total += rule(*self.image_size(part.image_url.url), part.image_url.detail)
            elif isinstance(part, VideoFramesPart):
                total += sum(rule(*self.image_size(frame), None) for frame in part.video)
            elif isinstance(part, VideoPart):
                total += DEFAULT_VIDEO_FRAMES * rule(*self._default_size, None)
        return total

    def image_size(self, source: str) -> tuple[int, int]:
        """Width and height of the image at *source* (data URI or local file) from its header,
        or the default size for remote URLs and unreadable images. Never uses the network."""
        key = _image_key(source)
        if key is None:
            return self._default_size
        cache = self._image_sizes
        if key in cache:
            cache.move_to_end(key)
            size = cache[key]
        else:
            size = _read_image_size(source)
            cache[key] = size
            if len(cache) > _IMAGE_CACHE_SIZE:
                cache.popitem(last=False)
        return size or self._default_size


def estimate_text_tokens(text: str) -> int:
    """A tokenizer-free estimate: ~4 ASCII bytes a token, 1 token per digit (Gemma, Qwen,
    Mistral and Llama 2 split numbers into single digits), 1 per CJK character, and ~2 other
    non-ASCII characters a token."""
    if not text:
        return 0
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if text.isascii():
        return math.ceil((len(text) - digits) / 4 + digits)
    non_ascii = len(_NON_ASCII.findall(text))
    cjk = len(_CJK.findall(text))
    ascii_chars = len(text) - non_ascii - digits
    return math.ceil(ascii_chars / 4 + digits + cjk + (non_ascii - cjk) / 2)


def _image_rule(spec: ModelSpec, request: ChatRequest) -> _ImageRule:
    """The image rule of *spec*'s vendor, with the request's DashScope resolution option."""
    tokenizer = spec.tokenizer or ""
    if tokenizer.startswith("qwen") or spec.provider == "dashscope":
        block = 32 if _uses_32px_blocks(spec.model) else 28
        option = request.provider_options.get("dashscope", {}).get("vl_high_resolution_images")
        high_res = bool(
            spec.defaults.get("vl_high_resolution_images") if option is None else option
        )
        cap = QWEN_VL_MAX_TOKENS_HIGH_RES if high_res else QWEN_VL_MAX_TOKENS

        def qwen(width: int, height: int, _detail: Detail) -> int:
            return qwen_vl_image_tokens(width, height, max_tokens=cap, block=block)

        return qwen
    model = spec.model

    def openai(width: int, height: int, detail: Detail) -> int:
        return openai_image_tokens(width, height, model=model, detail=detail)

    return openai


def _no_media(width: int, height: int, detail: Detail) -> int:
    """The image rule of a text-only request (never called: it has no media)."""
    raise AssertionError("a text-only request has no media to count")


def _counter(encoding: tiktoken.Encoding) -> Callable[[str], int]:
    encode = encoding.encode_ordinary  # user text never turns into special tokens

    def count(text: str) -> int:
        return len(encode(text)) if text else 0

    return count


def _text_of(message: Message) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


def _tool_call_tokens(message: Message, encode: Callable[[str], int]) -> int:
    total = 0
    if isinstance(message, AssistantMessage):
        if message.reasoning_content:
            total += encode(message.reasoning_content)
        for call in message.tool_calls or ():
            total += 3 + encode(call.function.name) + encode(call.function.arguments)
    elif isinstance(message, ToolMessage):
        total += encode(message.tool_call_id)
    return total


def _uses_32px_blocks(model: str) -> bool:
    # DashScope: Qwen3-VL and the qwen-vl-max/plus snapshots from July 2025 on use 32x32-pixel
    # blocks; Qwen2.5-VL (and the catalog's stable aliases) use 28x28.
    return model.startswith("qwen3-vl") or model in {
        "qwen-vl-max-2025-08-13",
        "qwen-vl-plus-2025-08-15",
        "qwen-vl-plus-2025-07-10",
    }


def _image_key(source: str) -> tuple[Any, ...] | None:
    head = source[:8].lower()
    if head.startswith(("http://", "https://")):
        return None
    if head.startswith("data:"):
        # str hashes are cached on the object, so this is cheap even for megabytes of base64.
        return ("data", len(source), hash(source))
    try:
        stat = (path := _local_path(source)).stat()
    except (OSError, ValueError, RuntimeError):  # unreadable, NUL in the path, unknown ~user
        return None
    return ("file", str(path), stat.st_mtime_ns, stat.st_size)


def _local_path(source: str) -> Path:
    if source[:7].lower() == "file://":
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(source).path))
    return Path(source).expanduser()


def _read_image_size(source: str) -> tuple[int, int] | None:
    from genrouter.errors import MediaError
    from genrouter.media import decode_data_uri, image_dimensions

    if source[:5].lower() == "data:":
        comma = source.find(",")
        if comma < 0 or ";base64" not in source[:comma].lower():
            return None
        import base64
        import binascii

        prefix = source[comma + 1 : comma + 1 + (_HEADER_BYTES // 3) * 4]
        try:
            size = image_dimensions(base64.b64decode(prefix))
        except (binascii.Error, ValueError):
            size = None
        if size is None:  # a JPEG whose frame header sits behind a large EXIF block
            try:
                size = image_dimensions(decode_data_uri(source)[1])
            except MediaError:
                return None
        return size
    try:
        with _local_path(source).open("rb") as handle:
            size = image_dimensions(handle.read(_HEADER_BYTES))
            if size is None:
                handle.seek(0)
                size = image_dimensions(handle.read())
    except (OSError, ValueError, RuntimeError):
        return None
    return size
