"""The benchmark's peer: llama.cpp (through llama-cpp-python) measured the way airlock-bench measures
airlock, in this process of its own. Prints one JSON line: load time, prompt pass, time to the first
greedy token, greedy decoding of the rest, and this process's peak RSS (VmHWM).

Run by airlock-bench; by hand: bench/.venv/bin/python bench/llamacpp_peer.py --model M --ids 1,2,3
"""

import argparse
import json
import time

import numpy as np
from llama_cpp import Llama

from peak_rss import peak_rss_kib  # bench/, beside this script


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    parser.add_argument("--gen-tokens", type=int, default=128)
    args = parser.parse_args()
    ids = [int(t) for t in args.ids.split(",")]

    started = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=1024,
        n_batch=512,
        verbose=False,
    )
    load_s = time.perf_counter() - started
    n_vocab = llm.n_vocab()

    def greedy():
        # The logits of the last evaluated position; argmax is greedy decoding, as airlock's side.
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
        return int(np.argmax(logits))

    # A short warm-up pass (pages the mapped weights in, starts the threads), as airlock's side.
    llm.eval(ids[:16])
    llm.reset()

    started = time.perf_counter()
    llm.eval(ids)
    prompt_s = time.perf_counter() - started
    tokens = [greedy()]
    ttft_s = time.perf_counter() - started

    started = time.perf_counter()
    while len(tokens) < args.gen_tokens:
        llm.eval([tokens[-1]])
        tokens.append(greedy())
    gen_s = time.perf_counter() - started

    print(
        json.dumps(
            {
                "load_s": load_s,
                "prompt_s": prompt_s,
                "ttft_s": ttft_s,
                "gen_s": gen_s,
                "prompt_tokens": len(ids),
                "gen_tokens": len(tokens),
                "peak_rss_kib": peak_rss_kib(),
                "tokens": tokens,
            }
        )
    )


if __name__ == "__main__":
    main()
