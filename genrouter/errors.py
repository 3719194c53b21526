"""Every exception genrouter raises, in one tree.

::

    GenRouterError
    ├── ConfigError                       bad configuration; ``location`` names the field
    ├── InvalidRequestError               the request itself is malformed; never retried
    │   ├── UnsupportedInputError         a part the chosen model cannot take (e.g. an image)
    │   └── ModelRetiredError             the named model is past its shutdown date; ``successor``
    ├── MediaError                        an image or video part could not be read or is unfit
    ├── NoCandidateError                  every candidate was excluded before sending
    ├── BudgetExceededError               the client's spending limit leaves no candidate
    ├── ProviderError                     a provider refused or failed (provider, model, status…)
    │   ├── AuthenticationError           401 / invalid key (also a key for the wrong region)
    │   ├── PermissionDeniedError         403
    │   ├── BillingError                  the account cannot pay (DashScope ``Arrearage``)
    │   ├── NotFoundError                 404 / unknown model
    │   ├── BadRequestError               400 the provider rejected for this model
    │   │   └── ContextWindowExceededError
    │   ├── ContentFilteredError          the provider's content filter stopped the request
    │   ├── RateLimitError                429; ``retry_after`` in seconds when the server said
    │   ├── ProviderTimeoutError          no answer in time
    │   │   ├── FirstTokenTimeoutError    a stream produced no content within first_token_timeout
    │   │   ├── AttemptTimeoutError       one attempt ran past its per-attempt timeout
    │   │   ├── StreamIdleTimeoutError    a stream went silent longer than its idle timeout
    │   │   └── DeadlineExceededError     the request's own deadline passed (not the model's fault)
    │   ├── ProviderConnectionError       refused, DNS, unreachable: the network may be down
    │   ├── ServerError                   5xx / service unavailable
    │   ├── ResponseFormatError           malformed JSON or SSE from the provider
    │   │   └── StructuredOutputError     the answer does not match the requested schema
    │   └── LocalModelError               a local model could not load or run
    │       ├── ModelFileError            missing, unreadable or not a GGUF file
    │       └── InsufficientMemoryError   not enough memory to load the model
    ├── StreamInterruptedError            a stream broke after text reached the caller
    └── AllCandidatesFailedError          every attempt failed (also an ``ExceptionGroup``)

Warnings (``warnings.warn``): ``GenRouterWarning`` (a ``UserWarning``), and under it
``GenRouterDeprecationWarning`` (a model in use is deprecated: once per model per client) and
``ModelCacheWarning`` (the refreshed model-list cache could not be read and was ignored).


Every provider error keeps the vendor exception as ``__cause__``, except where that exception
could carry a key (a parser's error holding the raw body, the openai SDK's exception holding
the request): then ``__cause__`` is a :class:`RedactedCause` naming the original's type with
its text redacted, and ``__context__`` is empty. No message, ``repr``, attribute or chained
exception of these errors holds an API key: text that came from a provider passes through
:func:`redact` with the keys (and secret header values) the provider knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from genrouter.types import RouteInfo

__all__ = [
    "AllCandidatesFailedError",
    "AttemptTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "ConfigError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "FirstTokenTimeoutError",
    "GenRouterDeprecationWarning",
    "GenRouterError",
    "GenRouterWarning",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "LocalModelError",
    "MediaError",
    "ModelCacheWarning",
    "ModelFileError",
    "ModelRetiredError",
    "NoCandidateError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "RedactedCause",
    "ResponseFormatError",
    "ServerError",
    "StreamIdleTimeoutError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "UnsupportedInputError",
    "redact",
]

# Shapes of keys that vendors echo back in error bodies (OpenAI ``sk-…``, DashScope ``sk-…``,
# bearer tokens). Anything matching is masked even when the exact key is unknown.
E = TypeVar("E", bound=BaseException)

_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+[A-Za-z0-9_\-.=]{8,})")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return *text* with every known secret and every key-shaped token masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_SHAPES.sub("***", text)


def _validation_summary(exc: BaseException) -> str | None:
    # pydantic's text shows ``input_value`` (the raw data, cut to its last characters, where an
    # exact-key redaction no longer matches); its structured errors without the input do not.
    errors = getattr(exc, "errors", None)
    if not callable(errors) or type(exc).__name__ != "ValidationError":
        return None
    try:
        items = errors(include_url=False, include_input=False, include_context=False)
    except TypeError:
        return None
    shown = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg')}" for e in items
    ]
    return f"{len(items)} validation error(s): " + "; ".join(shown[:5])


class RedactedCause(Exception):
    """Stands in, as ``__cause__``, for an exception whose text or attributes could hold a key.

    ``original_type`` is the dotted name of the exception it replaces; its message is that
    exception's text with secrets masked (pydantic validation errors: locations and messages
    only, never the input). ``status_code``, ``request_id`` and ``code`` are copied when the
    original had them (the openai SDK's exceptions do).
    """

    def __init__(self, original: BaseException, secrets: Iterable[str | None] = ()) -> None:
        kind = type(original)
        self.original_type = f"{kind.__module__}.{kind.__qualname__}"
        self.status_code: int | None = getattr(original, "status_code", None)
        self.request_id: str | None = getattr(original, "request_id", None)
        code = getattr(original, "code", None)
        self.code: str | None = code if isinstance(code, str) else None
        text = _validation_summary(original)
        if text is None:
            text = redact(str(original), secrets)
        super().__init__(f"{self.original_type}: {text[:500]}")


def detach(error: E, original: BaseException, secrets: Iterable[str | None] = ()) -> E:
    """Give *error* a :class:`RedactedCause` of *original* as its cause, and no context.

    Raise the result outside the ``except`` block that caught *original*: raising inside it
    would make *original* the ``__context__`` again.
    """
    error.__cause__ = RedactedCause(original, secrets)
    error.__context__ = None
    return error


def scrub_chain(error: BaseException, secrets: Iterable[str | None] = ()) -> None:
    """Replace, in place, every link of *error*'s chain that is not genrouter's own.

    Walks ``__cause__``, ``__context__`` and exception-group members; a foreign exception (a
    vendor's, a parser's) whose text shows a secret or a key-shaped token, or that is known to
    hold raw data (pydantic's ``ValidationError``, the openai SDK's exceptions), is replaced by
    a :class:`RedactedCause`; notes are redacted. Other links (an ``OSError``, httpx2's
    transport errors) stay, so tracebacks keep what helps; genrouter's own errors are already
    redacted when they are made.
    """
    secrets = tuple(secrets)
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        notes = getattr(node, "__notes__", None)
        if isinstance(notes, list):
            node.__notes__ = [redact(str(n), secrets) for n in notes]
        for attr in ("__cause__", "__context__"):
            link = getattr(node, attr)
            if link is None:
                continue
            if not isinstance(link, GenRouterError | RedactedCause) and _may_leak(link, secrets):
                link = RedactedCause(link, secrets)
                setattr(node, attr, link)
            stack.append(link)
        if isinstance(node, BaseExceptionGroup):
            stack.extend(node.exceptions)


def _may_leak(exc: BaseException, secrets: Sequence[str | None]) -> bool:
    kind = type(exc)
    if kind.__name__ == "ValidationError" or kind.__module__.split(".")[0] == "openai":
        return True
    text = f"{exc}\n{exc!r}"
    return redact(text, secrets) != text


class GenRouterError(Exception):
    """Root of every error genrouter raises."""


class ConfigError(GenRouterError):
    """The configuration is invalid. ``location`` is the dotted path of the bad field."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class InvalidRequestError(GenRouterError):
    """The request is malformed: no model could accept it, so it is never retried."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(f"{param}: {message}" if param else message)


class UnsupportedInputError(InvalidRequestError):
    """The request carries input (an image, video, tools…) that the chosen model cannot take."""


class ModelRetiredError(InvalidRequestError):
    """The request names a model past its shutdown date.

    ``model`` is its id, ``shutdown_on`` the date, ``successor`` what to use instead (or
    ``None``). Set ``follow_successors = true`` in the configuration to be routed there.
    """

    def __init__(
        self, message: str, *, model: str, shutdown_on: Any, successor: str | None
    ) -> None:
        self.model = model
        self.shutdown_on = shutdown_on
        self.successor = successor
        super().__init__(message, param="model")


class GenRouterWarning(UserWarning):
    """Base of genrouter's warnings."""


class GenRouterDeprecationWarning(GenRouterWarning):
    """A model this client routes to is deprecated (still answering, with a shutdown date)."""


class ModelCacheWarning(GenRouterWarning):
    """The cached provider model lists could not be read; the built-in catalog is used."""


class MediaError(GenRouterError):
    """An image or video part could not be used: missing file, unknown type or too large.

    ``source`` is the image or video as given; ``param`` the request field that holds it
    (``messages[0].content[1].image_url.url``) when the error was found validating a request.
    """

    def __init__(
        self, message: str, *, source: str | None = None, param: str | None = None
    ) -> None:
        self.source = source
        self.param = param
        super().__init__(f"{param}: {message}" if param else message)


class NoCandidateError(GenRouterError):
    """Routing excluded every candidate before anything was sent.

    ``decision`` is the :class:`~genrouter.routing.RouteDecision` that says why each was excluded.
    """

    def __init__(self, message: str, *, decision: Any = None) -> None:
        self.decision = decision
        super().__init__(message)


class BudgetExceededError(GenRouterError):
    """The client's spending limit leaves no candidate that fits."""

    def __init__(self, message: str, *, limit_usd: float, spent_usd: float) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        super().__init__(message)


class ProviderError(GenRouterError):
    """A provider failed or refused the request.

    Attributes name where it happened: ``provider`` (the configured provider name), ``model``
    (the vendor model id), ``status_code`` (HTTP status, if any), ``code`` (the vendor's error
    code, e.g. ``context_length_exceeded`` or ``Throttling.RateQuota``) and ``request_id``.
    ``retry_after`` is the wait in seconds the server asked for (``Retry-After`` on a 429 or
    a 503), if it did. ``should_retry`` is the server's explicit word (OpenAI's
    ``x-should-retry: true/false`` header), which routing obeys over the status; ``None``
    when it said nothing.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.message = message
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        super().__init__(message)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        facts = [f"status {self.status_code}"] if self.status_code is not None else []
        if self.code:
            facts.append(f"code {self.code}")
        if self.request_id:
            facts.append(f"request id {self.request_id}")
        tail = f" ({', '.join(facts)})" if facts else ""
        return f"{where}: {self.message}{tail}" if where else f"{self.message}{tail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401, DashScope ``InvalidApiKey``)."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but not allowed to do this (HTTP 403)."""


class BillingError(ProviderError):
    """The account cannot pay for the request (DashScope ``Arrearage``)."""


class NotFoundError(ProviderError):
    """The model or endpoint does not exist for these credentials (HTTP 404)."""


class BadRequestError(ProviderError):
    """The provider rejected the request as invalid for this model (HTTP 400/422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt plus the requested output does not fit the model's context window."""


class ContentFilteredError(ProviderError):
    """The provider's content filter refused the input or stopped the output."""


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429). ``retry_after`` is the server's wait in seconds, if given."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""


class FirstTokenTimeoutError(ProviderTimeoutError):
    """A stream produced no content within the first-token timeout."""


class AttemptTimeoutError(ProviderTimeoutError):
    """One attempt ran past its per-attempt timeout (the route's ``attempt_timeout_s`` or the
    provider's ``timeout_s``): a non-streamed answer, or a stream's wait for its first token."""


class StreamIdleTimeoutError(ProviderTimeoutError):
    """A stream sent nothing for longer than its idle timeout (``stream_idle_timeout_s``)."""


class DeadlineExceededError(ProviderTimeoutError):
    """The request's overall deadline (``timeout=``, ``deadline_s``) passed during an attempt.

    It is the caller's limit, not the model's failure: it never counts against the model's
    health.
    """


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (refused, DNS failure, unreachable, reset)."""


class ServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx, service unavailable, ``InternalError``)."""


class ResponseFormatError(ProviderError):
    """The provider answered with something that is not valid JSON or SSE."""


class StructuredOutputError(ResponseFormatError):
    """The answer is not what ``response_format`` (or a strict tool) asked for.

    Raised by ``parse()`` (and ``create(response_format=MyModel)``) when the content does not
    validate against the model class, is cut off by ``max_tokens``, or a strict tool call's
    arguments are not valid JSON. Routing moves on to the next candidate; ``content`` is the
    text that failed (as the provider sent it).
    """

    def __init__(self, message: str, *, content: str | None = None, **where: Any) -> None:
        self.content = content
        super().__init__(message, **where)


class LocalModelError(ProviderError):
    """A local model could not be loaded or run."""

    def __init__(self, message: str, *, path: str | None = None, **where: Any) -> None:
        self.path = path
        super().__init__(message, **where)


class ModelFileError(LocalModelError):
    """A local model file is missing, unreadable or not a GGUF file."""


class InsufficientMemoryError(LocalModelError):
    """There is not enough memory to load a local model."""


class StreamInterruptedError(GenRouterError):
    """A stream broke after content had reached the caller.

    ``partial_text`` is exactly what the caller received, ``route`` the route so far, and the
    original failure is ``__cause__``. Retrying silently here would duplicate or lose text, so
    genrouter raises instead (or resumes, when the caller asked for ``resume=True``).
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str,
        partial_reasoning: str = "",
        route: RouteInfo | None = None,
    ) -> None:
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        self.route = route
        super().__init__(message)


class AllCandidatesFailedError(ExceptionGroup[Exception], GenRouterError):
    """Every attempt on every candidate failed.

    It is an ``ExceptionGroup`` of each attempt's error (``except*`` works on it), and ``route``
    holds the :class:`~genrouter.types.RouteInfo` with every attempt's outcome.
    """

    route: RouteInfo | None

    def __new__(
        cls, message: str, errors: Sequence[Exception], *, route: RouteInfo | None = None
    ) -> AllCandidatesFailedError:
        return super().__new__(cls, message, list(errors))

    def __init__(
        self, message: str, errors: Sequence[Exception], *, route: RouteInfo | None = None
    ) -> None:
        super().__init__(message, list(errors))
        self.route = route

    def derive(self, excs: Sequence[Exception]) -> AllCandidatesFailedError:  # type: ignore[override]
        return AllCandidatesFailedError(self.message, excs, route=self.route)
