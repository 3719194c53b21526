"""Testing helpers: a fake OpenAI-compatible server you can script and inspect.

::

    from genrouter.testing import FakeLLMServer, Reply

    with FakeLLMServer() as server:
        server.enqueue(Reply.text("Hello!"))
        # point any OpenAI-compatible client (genrouter's, the openai SDK…) at
        # server.openai_base_url; server.requests records what it sent.

Nothing here is imported by ``import genrouter``.
"""

from __future__ import annotations

from genrouter.testing._replies import Reply
from genrouter.testing.fake_server import FakeLLMServer, RecordedRequest

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply"]
