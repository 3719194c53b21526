"""The checks every request passes before any I/O: one door, typed errors naming the field.

:func:`genrouter.request.build_request` calls :func:`check_params` on the raw keyword
arguments (what pydantic would crash on or misreport: ``messages=False``, ``temperature=nan``)
and :func:`check_request` on the validated :class:`~genrouter.request.ChatRequest`, before
routing plans anything or reads any file. Each failure is an
:class:`~genrouter.errors.InvalidRequestError` (or a :class:`~genrouter.errors.MediaError`
for images and video) whose ``param`` is the path of the bad field, e.g.
``messages[0].content[1].image_url.url``.

What is checked:

- every string (message text, names, tool arguments, metadata, ``stop``…) is valid Unicode:
  a lone surrogate such as ``"\\ud800"`` cannot be encoded as UTF-8 and is refused;
- every number is finite (``NaN`` and infinity are refused, never written into the body);
- ``extra_body``, ``provider_options``, ``tools``, ``tool_choice`` and ``response_format``
  hold only JSON values (objects with string keys, arrays, strings, finite numbers, booleans,
  null), nested at most :data:`MAX_DEPTH` deep;
- the model name has no control characters;
- tools are ``{"type": "function", "function": {"name", "description", "parameters"}}`` with
  a valid function name and a valid JSON Schema (``jsonschema``'s ``check_schema``, imported
  only when a request carries a schema); ``tool_choice`` names one of them;
- ``response_format`` is ``text``, ``json_object`` or ``json_schema`` (with a name and a valid
  schema);
- images: ``data:`` URIs must be well-formed base64 of an ``image/*`` type, http(s) URLs must
  name a host, and a local path must be a regular file within the size cap (checked with
  ``stat``, which never blocks: a FIFO or ``/dev/zero`` is refused without being opened);
- video files (``video_url``) must be URLs (http(s), ``oss://``) or ``data:`` URIs: a local
  video file cannot be sent.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from genrouter.errors import InvalidRequestError, MediaError

if TYPE_CHECKING:
    from genrouter.request import ChatRequest

__all__ = ["MAX_DEPTH", "check_json_schema", "check_params", "check_request"]

MAX_DEPTH = 64
"""How deeply JSON values in a request may nest (deeper is refused, not recursed into)."""

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_VIDEO_SCHEMES = frozenset({"http", "https", "oss", "data"})
_IMAGE_SCHEMES = frozenset({"http", "https", "oss", "data", "file"})
_TEXT_ONLY = frozenset({"text"})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
# Top-level parameters whose values are written into the JSON body as they are.
_JSON_PARAMS = (
    "tools",
    "tool_choice",
    "response_format",
    "extra_body",
    "provider_options",
    "stop",
    "user",
    "metadata",
    "logit_bias",
)
Path = list[str | int]


def _where(root: str, path: Iterable[str | int]) -> str:
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _bad_text(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"is not valid Unicode: a lone surrogate {text[exc.start]!r} at index {exc.start} "
            "(decode text with errors='replace', or fix its source)"
        )
    return None


_NOT_FINITE = "must be a finite number, not NaN or infinity"


def _bad_scalar(value: Any) -> tuple[bool, str | None]:
    """``(is a scalar, reason it is bad)``; containers and other objects are not scalars."""
    if value is None or isinstance(value, bool | int):
        return True, None
    if isinstance(value, str):
        return True, _bad_text(value)
    if isinstance(value, float):
        return True, None if math.isfinite(value) else _NOT_FINITE
    return False, None


def _children(value: Any) -> Iterable[tuple[str | int, Any]] | None:
    """The ``(key, item)`` pairs of a container, or ``None`` when *value* is not one."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, list | tuple):
        return enumerate(value)
    if isinstance(value, BaseModel):
        return value.__dict__.items()  # the field values (pydantic keeps them there)
    return None


def _is_clean_json(value: Any) -> bool:
    """Fast path (C speed): JSON with finite numbers whose text encodes as UTF-8."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return False
    return True


def _find_bad(value: Any, depth: int = 0) -> tuple[Path, str] | None:
    """The path (innermost last) and reason of the first value that is not clean JSON."""
    if type(value) is str:  # the common case, first
        return None if value.isascii() or _bad_text(value) is None else ([], _bad_text(value) or "")
    scalar, reason = _bad_scalar(value)
    if scalar:
        return None if reason is None else ([], reason)
    children = _children(value)
    if children is None:
        return [], f"is not JSON-serializable (got {type(value).__name__})"
    if depth >= MAX_DEPTH:
        return [], f"is nested more than {MAX_DEPTH} levels deep"
    is_mapping = isinstance(value, Mapping)
    for key, item in children:
        if is_mapping:
            if not isinstance(key, str):
                return [], f"has a key {key!r} that is not a string"
            if (bad_key := _bad_text(key)) is not None:
                return [key], f"has a key that {bad_key}"
        found = _find_bad(item, depth + 1)
        if found is not None:
            found[0].insert(0, key)
            return found
    return None


def check_params(params: Mapping[str, Any]) -> None:
    """Checks on the raw ``create()`` arguments, before the request model is built.

    These are the cases the model would misreport or crash on: messages that are not a list
    of messages, and numbers that are not finite (pydantic would say "should be ≤ 2" of NaN).
    """
    messages = params.get("messages")
    if type(messages) is not list and (  # a list (the usual case) is fine: skip the ABC checks
        isinstance(messages, str | bytes | bytearray | Mapping | BaseModel)
        or not isinstance(messages, Iterable)
    ):
        raise InvalidRequestError(
            f"expected a list of messages, got {type(messages).__name__}", param="messages"
        )
    for name, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequestError(f"must be a finite number, got {value!r}", param=str(name))


def check_request(request: ChatRequest) -> ChatRequest:
    """Every check of the validated *request* (see the module docstring); returns it."""
    bad_model = _CONTROL.search(request.model)
    if bad_model or _bad_text(request.model):
        raise InvalidRequestError(
            "the model name has control characters or invalid Unicode", param="model"
        )
    for i, message in enumerate(request.messages):
        for name, value in message.__dict__.items():
            # Plain ASCII text and unset fields (nearly every field) need no walk.
            if value is None or (type(value) is str and value.isascii()):
                continue
            found = _find_bad(value, 2)
            if found is not None:
                where = _where(f"messages[{i}].{name}", found[0])
                raise InvalidRequestError(found[1], param=where)
    fields = request.__dict__
    # Only the parameters the caller set can hold anything but their (clean) defaults.
    given = request.model_fields_set
    for name in _JSON_PARAMS:
        if name not in given:
            continue
        value = fields.get(name)
        # An empty mapping (``provider_options`` defaults to one) is clean JSON: skip the encode.
        if value is None or (type(value) is dict and not value) or _is_clean_json(value):
            continue
        found = _find_bad(value)
        if found is not None:
            raise InvalidRequestError(found[1], param=_where(name, found[0]))
    _check_tools(request)
    _check_response_format(getattr(request, "response_format", None))
    _check_media(request)
    return request


# -- tools and output formats ------------------------------------------------------------


def check_json_schema(schema: Any, param: str) -> None:
    """Raise :class:`InvalidRequestError` unless *schema* is a valid JSON Schema object.

    Uses ``jsonschema``'s ``check_schema`` with the validator for the schema's ``$schema``
    (draft 2020-12 when it names none). ``jsonschema`` is imported on the first schema.
    """
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(
            f"a JSON Schema must be an object, got {type(schema).__name__}", param=param
        )
    try:
        text = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # keys that do not sort; the walk above refused the rest
        problem = _schema_problem_of(schema)
    else:
        problem = _schema_problem(text)
    if problem is not None:
        where, message = problem
        raise InvalidRequestError(f"is not a valid JSON Schema: {message}", param=param + where)


# Checking a schema against its metaschema costs milliseconds (draft 2020-12), and a client
# sends the same few tool schemas again and again. This memo of a pure function (schema text
# -> problem) is shared by clients the way a compiled regex is: it holds no client's state
# and cannot change any answer, only how fast it comes.
@functools.lru_cache(maxsize=256)
def _schema_problem(text: str) -> tuple[str, str] | None:
    return _schema_problem_of(json.loads(text))


def _schema_problem_of(schema: Any) -> tuple[str, str] | None:
    from jsonschema import exceptions, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        return where, str(exc.message)[:200]
    return None


def _check_tools(request: ChatRequest) -> None:
    tools = getattr(request, "tools", None)
    names: set[str] = set()
    for i, tool in enumerate(tools or ()):
        param = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise InvalidRequestError("a tool must be an object", param=param)
        kind = tool.get("type", "function")
        if kind != "function":
            if not isinstance(kind, str):
                raise InvalidRequestError("must be a string", param=f"{param}.type")
            continue  # other tool kinds pass through to the vendor unchanged
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise InvalidRequestError(
                'expected {"name": ..., "parameters": {...}}', param=f"{param}.function"
            )
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise InvalidRequestError(
                "a function name is 1-64 letters, digits, '_', '-', '.' or ':'",
                param=f"{param}.function.name",
            )
        if name in names:
            raise InvalidRequestError(
                f"duplicate tool name {name!r}", param=f"{param}.function.name"
            )
        names.add(name)
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise InvalidRequestError("must be a string", param=f"{param}.function.description")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequestError("must be true or false", param=f"{param}.function.strict")
        if "parameters" in function:
            check_json_schema(function["parameters"], f"{param}.function.parameters")
    _check_tool_choice(getattr(request, "tool_choice", None), names, bool(tools))


def _check_tool_choice(choice: Any, names: set[str], has_tools: bool) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise InvalidRequestError(
                f"expected 'none', 'auto', 'required' or a function, got {choice!r}",
                param="tool_choice",
            )
        if choice != "none" and not has_tools:
            raise InvalidRequestError(f"{choice!r} needs tools", param="tool_choice")
        return
    if not isinstance(choice, Mapping) or not isinstance(choice.get("type"), str):
        raise InvalidRequestError(
            'expected a string or {"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if choice["type"] != "function":
        return  # e.g. "allowed_tools": the vendor checks its own shapes
    function = choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise InvalidRequestError("expected a function name", param="tool_choice.function.name")
    if name not in names:
        known = ", ".join(sorted(names)) or "no tools were given"
        raise InvalidRequestError(
            f"names {name!r}, which is not one of the tools ({known})",
            param="tool_choice.function.name",
        )


def _check_response_format(fmt: Any) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, Mapping):
        raise InvalidRequestError("expected an object", param="response_format")
    kind = fmt.get("type")
    if kind not in _RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"type must be 'text', 'json_object' or 'json_schema', got {kind!r}",
            param="response_format.type",
        )
    if kind != "json_schema":
        return
    spec = fmt.get("json_schema")
    if not isinstance(spec, Mapping):
        raise InvalidRequestError(
            'expected {"name": ..., "schema": {...}}', param="response_format.json_schema"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
        raise InvalidRequestError(
            "a schema name is 1-64 letters, digits, '_', '-', '.' or ':'",
            param="response_format.json_schema.name",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequestError(
            "must be true or false", param="response_format.json_schema.strict"
        )
    if "schema" in spec:
        check_json_schema(spec["schema"], "response_format.json_schema.schema")


# -- media ---------------------------------------------------------------------------------


def _media_sources(request: ChatRequest) -> Iterable[tuple[str, str, str]]:
    """``(field path, source, "image" | "video")`` for every media part of every message."""
    for i, message in enumerate(request.messages):
        content = getattr(message, "content", None)
        if isinstance(content, str) or not isinstance(content, list | tuple):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = getattr(part, "type", None)
            if kind == "image_url":
                yield f"{where}.image_url.url", part.image_url.url, "image"
            elif kind == "video_url":
                yield f"{where}.video_url.url", part.video_url.url, "video"
            elif kind == "video":
                for k, frame in enumerate(part.video):
                    yield f"{where}.video[{k}]", frame, "image"


def _check_media(request: ChatRequest) -> None:
    if request.needs().modalities == _TEXT_ONLY:
        return
    for param, source, kind in _media_sources(request):
        _check_source(param, source, kind)


def _check_source(param: str, source: str, kind: str) -> None:
    from genrouter.media import check_local_file, decode_data_uri

    match = _URL_SCHEME.match(source)
    # "C:\\…" is a Windows path, not a URL with the scheme "c".
    scheme = match.group(1).lower() if match and len(match.group(1)) > 1 else None
    if kind == "video":
        if scheme not in _VIDEO_SCHEMES:
            raise MediaError(
                "a video must be an http(s) or oss:// URL or a data: URI; a local file "
                'is not uploaded (send its frames: {"type": "video", "video": [...]})',
                source=source[:60],
                param=param,
            )
    elif scheme is not None and scheme not in _IMAGE_SCHEMES:
        raise MediaError(
            f"unsupported URL scheme {scheme!r}; use http(s), data: or a local path",
            source=source[:60],
            param=param,
        )
    if scheme == "data":
        try:
            mime, _ = decode_data_uri(source)
        except MediaError as exc:
            raise MediaError(str(exc), source=exc.source, param=param) from None
        if not mime.startswith(f"{kind}/"):
            raise MediaError(
                f"the data URI has type {mime!r}, not an {kind} type",
                source=source[:60],
                param=param,
            )
    elif scheme in ("http", "https"):
        if not _has_host(source):
            raise MediaError("the URL names no host", source=source[:60], param=param)
    elif scheme in (None, "file"):
        try:
            check_local_file(source)
        except MediaError as exc:
            raise MediaError(str(exc), source=exc.source, param=param) from None


def _has_host(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False
