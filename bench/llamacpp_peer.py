"""The benchmark's peer: llama.cpp (through llama-cpp-python) measured the way airlock-bench measures
airlock, in this process of its own. Prints one JSON line: load time, prompt pass, time to the first
greedy token, greedy decoding of the rest, and this process's peak RSS (VmHWM).

With --constraint, decodes greedily under a grammar until the value is complete (end-of-generation)
or --gen-tokens: `json` is llama.cpp's own JSON-object grammar, anything else a JSON Schema file,
converted to a GBNF grammar by llama-cpp-python's json-schema-to-grammar.

Run by airlock-bench; by hand: bench/.venv/bin/python bench/llamacpp_peer.py --model M --ids 1,2,3
"""

import argparse
import json
import time

import numpy as np
from llama_cpp import Llama, LlamaGrammar
from llama_cpp import llama_cpp as C
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from peak_rss import peak_rss_kib  # bench/, beside this script


def without_extra_buffer_types():
    """Loads weights without llama.cpp's "extra buffer types". On CPUs with AMX (recent Xeons),
    the default build routes matmuls through its AMX backend, which crashes (SIGSEGV in
    ggml_backend_amx_mul_mat) on these virtual machines; without it llama.cpp multiplies with
    the same AVX-512 VNNI kernels as on CPUs without AMX. (Its other extra buffer type, weight
    repacking, has no x86 variant for this model's Q4_1 and Q8_0 blocks.)"""
    default = C.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--constraint", help="`json`, or a JSON Schema file to decode under")
    args = parser.parse_args()
    ids = [int(t) for t in args.ids.split(",")]

    without_extra_buffer_types()
    started = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_ctx=1024,
        n_batch=512,
        verbose=False,
    )
    # Compiled with the model, as airlock's side builds its constraint compiler.
    grammar = grammar_for(args.constraint) if args.constraint else None
    load_s = time.perf_counter() - started
    n_vocab = llm.n_vocab()

    def greedy():
        # The logits of the last evaluated position; argmax is greedy decoding, as airlock's side.
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
        return int(np.argmax(logits))

    # A short warm-up pass (pages the mapped weights in, starts the threads), as airlock's side.
    llm.eval(ids[:16])
    llm.reset()

    if grammar is not None:
        prompt_s, gen_s, tokens = constrained(llm, ids, grammar, args.gen_tokens)
        ttft_s = prompt_s
    else:
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


def grammar_for(constraint):
    if constraint == "json":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    with open(constraint, encoding="utf-8") as f:
        gbnf = json_schema_to_gbnf(f.read())
    # llama-cpp-python's converter writes a regex's escaped dot as "\." in a GBNF string literal,
    # which llama.cpp's grammar parser rejects ("unknown escape"); in a literal the dot needs none.
    return LlamaGrammar.from_string(gbnf.replace('"\\."', '"."'), verbose=False)


def constrained(llm, ids, grammar, max_tokens):
    """Greedy decoding through llama-cpp-python's sampler chain with the grammar (temperature 0),
    until end-of-generation (kept, as airlock keeps it) or max_tokens. Returns the prompt pass's
    seconds (with the first token), the rest's seconds, and the tokens."""
    eos = llm.token_eos()
    tokens = []
    started = time.perf_counter()
    for token in llm.generate(ids, temp=0.0, repeat_penalty=1.0, grammar=grammar):
        tokens.append(token)
        if len(tokens) == 1:
            prompt_s = time.perf_counter() - started
            started = time.perf_counter()
        if token == eos or len(tokens) >= max_tokens:
            break
    return prompt_s, time.perf_counter() - started, tokens


if __name__ == "__main__":
    main()
