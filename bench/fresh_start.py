"""Child process for the cold-start figures; prints one JSON line. Run by bench/run.py.

    python bench/fresh_start.py cached TOKENIZER WORKLOAD   # import + vocab + first cached load
    python bench/fresh_start.py jit TOKENIZER WORKLOAD      # first compile (cache=False)

The parent sets KMGRAMMAR_CACHE_DIR (a primed cache) and, for the JIT run, an empty
NUMBA_CACHE_DIR so numba compiles its kernels from scratch.
"""

from __future__ import annotations

import json
import sys
import time

t_start = time.perf_counter()


def main() -> None:
    mode, tok_name, wl_name = sys.argv[1:4]
    out = {}
    t0 = time.perf_counter()
    import kmgrammar

    out["import_s"] = time.perf_counter() - t0
    from engines import LLAMA3_GGUF
    from workloads import all_workloads

    wl = all_workloads()[wl_name]
    t0 = time.perf_counter()
    if tok_name == "cl100k":
        vocab = kmgrammar.Vocabulary.from_tiktoken("cl100k_base")
    else:
        vocab = kmgrammar.Vocabulary.from_gguf(LLAMA3_GGUF)
    out["vocab_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = wl.compile_kmgrammar(vocab, cache=(mode == "cached"))
    out["first_load_s" if mode == "cached" else "first_compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = kmgrammar.Matcher(compiled)
    bm = kmgrammar.allocate_token_bitmask(1, vocab.vocab_size)
    m.fill_next_token_bitmask(bm)
    out["first_mask_s"] = time.perf_counter() - t0
    out["in_process_s"] = time.perf_counter() - t_start
    print(json.dumps(out))


if __name__ == "__main__":
    main()
