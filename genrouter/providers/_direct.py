"""A provider's send path straight onto genrouter's own transport, below httpx2's client layer.

``httpx2.AsyncClient.build_request`` and ``send`` cost tens of microseconds a request above
the transport (URL and default-header merges, the cookie jar, five ``Headers`` objects, the auth
flow and redirect loop as async generators, event hooks, a timing wrapper round the body). For
the pool genrouter builds itself none of that does anything: no auth, no hooks, no redirects
followed, no base URL or default params, default headers only. :class:`DirectRoute` is used
only while that is true, and then it makes the same request (the same bytes on the wire: the
``Host`` header, httpx2's default headers, the caller's, ``Content-Length``, in httpx2's order)
and hands it to the transport httpx2 would pick for the URL.

What it keeps from httpx2's ``send``: ``response.request``, the client's default encoding,
cookies a response sets go into the client's jar (and while the jar holds any, requests take
httpx2's own path, which sends them), the ``httpx2`` logger's INFO line, the request attached
to transport errors, and for a whole-body call the body read (content-encoding decoded by the
response) and the response closed if that read fails. What it drops: ``response.elapsed``
(nothing in genrouter reads it).

Anything else takes httpx2's own path: another transport (``[pool] transport = "httpx"``, a
caller's own ``http_client``), an environment proxy (or ``NO_PROXY``) mount matching the URL, a
URL with user info, a closed client, or caller headers naming ``Host``, ``Content-Length`` or
``Transfer-Encoding``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx2

from genrouter._transport import AsyncioHTTP1Transport, raw_body

__all__ = ["DirectRoute"]

_FRAMING = frozenset({b"host", b"content-length", b"transfer-encoding"})


class DirectRoute:
    """Build and send one provider URL's requests without ``AsyncClient``'s client layer.

    Made by :meth:`for_pool`, which returns ``None`` where httpx2's own path is needed.
    """

    def __init__(self, http: httpx2.AsyncClient, transport: httpx2.AsyncBaseTransport) -> None:
        self._http = http
        self._transport = transport
        # What the client adds to every request (httpx2's own entries, compared per call).
        self._defaults = list(getattr(http.headers, "_list", ()))
        # The head for the provider's usual headers dict (rebuilt when the key changes), as
        # the Headers object each request copies (a list copy, no per-header normalising).
        self._head_for: Mapping[str, str] | None = None
        self._head: httpx2.Headers | None = None
        self._log = logging.getLogger("httpx2")

    @classmethod
    def for_pool(cls, http: httpx2.AsyncClient, url: httpx2.URL) -> DirectRoute | None:
        """The route for *url* on *http*, or ``None`` when httpx2's own path must send it."""
        transport = getattr(http, "_transport", None)
        mounts = getattr(http, "_mounts", None)
        if (
            type(http) is not httpx2.AsyncClient
            or not isinstance(transport, AsyncioHTTP1Transport)
            or url.raw_scheme not in (b"http", b"https")
            or url.userinfo
            or not url.host
            or http.params
            or mounts is None
            or any(pattern.matches(url) for pattern in mounts)
        ):
            return None
        route = cls(http, transport)
        return route if route.usable() else None

    def usable(self) -> bool:
        """Whether httpx2's client layer would do nothing for a request now (checked per call).

        Cookies arrive with responses: while the jar holds any, httpx2 sends them. The
        private attributes read here are httpx2's (and ``http.cookiejar``'s); where one is
        missing, the answer is no.
        """
        http = self._http
        hooks = getattr(http, "_event_hooks", None)
        return (
            not http.is_closed
            and getattr(http, "_auth", True) is None
            and not http.follow_redirects
            and hooks is not None
            and not hooks.get("request")
            and not hooks.get("response")
            # CookieJar's own len() walks every domain: its dict says "empty" at once.
            and not getattr(http.cookies.jar, "_cookies", True)
            and bool(self._defaults)
            and getattr(http.headers, "_list", None) == self._defaults
        )

    def build(
        self,
        url: httpx2.URL,
        headers: Mapping[str, str],
        content: bytes,
        params: Mapping[str, Any] | None,
        timeout: dict[str, float | None],
    ) -> httpx2.Request | None:
        """The request ``build_request("POST", ...)`` would make, or ``None`` (use it).

        *timeout* is the request's ``timeout`` extension (``httpx2.Timeout.as_dict()``).
        """
        if headers is self._head_for:
            head = self._head
        else:
            head = self._head_of(url, headers)
            if head is not None:
                self._head_for, self._head = headers, head
        if head is None:
            return None
        request = httpx2.Request(
            "POST",
            url,
            params=params,
            headers=head,  # copied by Request()
            stream=httpx2.ByteStream(content),
            extensions={"timeout": timeout},
        )
        # Content-Length last, as before: (raw name, lower-cased name, value), httpx2's entry.
        size = b"%d" % len(content)
        request.headers._list.append((b"Content-Length", b"content-length", size))
        # What Request(content=...) and read() leave: the body held, sent at once.
        request._content = content
        return request

    def _head_of(self, url: httpx2.URL, headers: Mapping[str, str]) -> httpx2.Headers | None:
        # httpx2's own merge (client defaults, then the caller's: same casing, order, encoding),
        # then what Request() puts first (Host); Content-Length goes last, per request.
        merged = httpx2.Headers(self._http.headers)
        merged.update(headers)
        raw = merged.raw
        if any(name.lower() in _FRAMING for name, _ in raw):
            return None  # the caller set framing headers itself: httpx2's rules decide
        return httpx2.Headers([(b"Host", url.netloc), *raw])

    async def send(self, request: httpx2.Request, *, stream: bool) -> httpx2.Response:
        """``AsyncClient.send(request, stream=stream)`` for a request :meth:`build` made."""
        try:
            response = await self._transport.handle_async_request(request)
        except httpx2.RequestError as exc:
            exc.request = request  # as httpx2's request_context does
            raise
        response.request = request
        response.default_encoding = getattr(self._http, "_default_encoding", "utf-8")
        # One pass over httpx2's lower-cased names for both questions (``name in headers``
        # encodes the name and scans the list, once per question).
        names = {lower for _raw, lower, _value in response.headers._list}
        if b"set-cookie" in names:
            self._http.cookies.extract_cookies(response)
        self._log.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
        if not stream:
            try:
                if b"content-encoding" in names:
                    await response.aread()  # httpx2 decodes it
                else:
                    await _read_plain(response, request)
            except BaseException:
                await response.aclose()
                raise
        return response


async def _read_plain(response: httpx2.Response, request: httpx2.Request) -> None:
    """``await response.aread()`` for a body without ``Content-Encoding``.

    The same bytes and the same end state (content set, stream consumed, response closed and
    its connection released, the request attached to a transport error), without the layers
    that do nothing for such a body: httpx2's identity decoder, two chunkers and three
    generators between the transport's stream and the bytes. Whether the straight read gives
    the same bytes is :func:`genrouter._transport.raw_body`'s to say.
    """
    parts = raw_body(response)
    if parts is None:
        await response.aread()  # not a stream this route can read straight: httpx2's own path
        return
    try:
        content = b"".join([part async for part in parts])
    except httpx2.RequestError as exc:
        exc.request = request  # as httpx2's request_context does
        raise
    finally:
        await parts.aclose()
        await response.aclose()
    response._num_bytes_downloaded = len(content)
    response._content = content
