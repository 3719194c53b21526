"""Build a tiny llama-architecture GGUF with random weights, for fast tests.

The vocabulary is a SentencePiece-style one: three special tokens, every printable ASCII
character, ``▁`` (SentencePiece's space), a few whole words and 256 byte-fallback tokens,
so any text tokenizes. The weights are random, so what the model says is noise unless a
grammar constrains it; the file is about 150 KB and loads in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# A template that opens the thought itself, as newer DeepSeek-R1 templates do.
THINK_OPEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|User|>' + message['content'] }}"
    "{% else %}{{ '<|Assistant|>' + message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|Assistant|><think>\n' }}{% endif %}"
)

_WORDS = ["the", "answer", "think", "yes", "no", "▁the", "▁answer"]


def _vocab() -> tuple[list[str], list[float], list[int]]:
    normal, unknown, control, byte = (
        gguf.TokenType.NORMAL,
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.BYTE,
    )
    tokens = ["<unk>", "<s>", "</s>"]
    types = [unknown, control, control]
    for text in ["▁", *[chr(c) for c in range(0x21, 0x7F)], *_WORDS]:
        tokens.append(text)
        types.append(normal)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(byte)
    # Longer pieces score higher so the tokenizer prefers whole words.
    scores = [0.0 if t != normal else float(len(tok)) for tok, t in zip(tokens, types, strict=True)]
    return tokens, scores, [int(t) for t in types]


def build_tiny_gguf(
    path: Path, *, chat_template: str | None = None, n_layers: int = 1, seed: int = 0
) -> Path:
    """Write a tiny random-weight llama GGUF to *path* and return *path*."""
    n_embd, n_ff, n_head, n_ctx = 32, 64, 2, 512
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-llama")
    writer.add_block_count(n_layers)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
