"""The synchronous ``Client``: the same API, for scripts and sync web frameworks.

Runs against the bundled fake server; a dry run shows the decision before anything is sent.
"""

from __future__ import annotations

from genrouter import Client
from genrouter.params import MessageParam
from genrouter.testing import FakeLLMServer, Reply


def main() -> None:
    with FakeLLMServer() as server:
        server.enqueue(Reply.text("Hello from a sync client."), Reply(chunks=["str", "eam", "ed"]))
        config = {
            "providers": {
                "vllm": {"type": "openai_compatible", "base_url": server.openai_base_url}
            },
            "models": {"vllm/llama-3.1-8b-instruct": {"context_window": 8192}},
        }
        with Client(config, env={}) as client:
            messages: list[MessageParam] = [{"role": "user", "content": "Hi"}]
            decision = client.route(model="vllm/llama-3.1-8b-instruct", messages=messages)
            print(decision.explain())
            response = client.chat.completions.create(
                model="vllm/llama-3.1-8b-instruct", messages=messages
            )
            print(response.choices[0].message.content)
            with client.chat.completions.create(
                model="vllm/llama-3.1-8b-instruct", messages=messages, stream=True
            ) as stream:
                print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
            print(stream.get_final_completion().usage)


if __name__ == "__main__":
    main()
