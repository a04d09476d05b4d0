"""Formatting: the results table (kmgrammar row, then each peer with a kmgrammar/peer ratio row),
the cold-start lines and the mask-agreement findings, from the JSON that run.py saves."""

from __future__ import annotations


def fmt_time(s) -> str:
    if s is None:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_us(us) -> str:
    if us is None:
        return "n/a"
    return f"{us:.2f}" if us < 10 else f"{us:.1f}" if us < 100 else f"{us:,.0f}"


def fmt_bytes(b) -> str:
    if b is None:
        return "n/a"
    if b >= 1 << 20:
        return f"{b / (1 << 20):.2f} MB"
    if b >= 1 << 10:
        return f"{b / (1 << 10):.1f} KB"
    return f"{b} B"


def ratio(a, b) -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.2g}×" if r < 1 else f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


COLS = ("workload", "engine", "compile", "cached load", "mask mean µs", "p50", "p99", "max",
        "artifact", "mask diffs")


def _cells(e: dict) -> list:
    comp = (e.get("compile") or {}).get("median_s")
    load = (e.get("cached_load") or {}).get("median_s")
    m = e.get("mask") or {}
    diff = agreement_summary(e.get("agreement"), e.get("_name", ""))
    if e.get("measure_error"):
        diff = f"measurement failed: {e['measure_error'][:60]}"
    acc = e.get("acceptance")
    if acc and acc["failed"]:
        diff += f"; rejects {acc['failed']}/{acc['documents']} valid docs"
    return [fmt_time(comp), fmt_time(load), fmt_us(m.get("mean_us")), fmt_us(m.get("p50_us")),
            fmt_us(m.get("p99_us")), fmt_us(m.get("max_us")), fmt_bytes(e.get("size_bytes")), diff]


def _ratio_cells(k: dict, p: dict) -> list:
    def g(e, *path):
        for key in path:
            e = (e or {}).get(key)
        return e

    return [ratio(g(k, "compile", "median_s"), g(p, "compile", "median_s")),
            ratio(g(k, "cached_load", "median_s"), g(p, "cached_load", "median_s")),
            *(ratio(g(k, "mask", f), g(p, "mask", f)) for f in ("mean_us", "p50_us", "p99_us", "max_us")),
            ratio(k.get("size_bytes"), p.get("size_bytes")), ""]


def table_rows(tok: dict) -> list:
    rows = []
    for wname, w in tok["workloads"].items():
        engines = w["engines"]
        k = engines.get("kmgrammar")
        first = True
        for ename, e in engines.items():
            if "error" in e:
                rows.append([wname if first else "", ename, f"failed: {e['error'][:60]}"] + [""] * 7)
                first = False
                continue
            rows.append([wname if first else "", ename] + _cells(dict(e, _name=ename)))
            first = False
            if ename != "kmgrammar" and k and "error" not in k:
                rows.append(["", "  km/peer"] + _ratio_cells(k, e))
    return rows


def text_table(rows: list) -> str:
    widths = [max(len(str(r[i])) for r in [COLS, *rows]) for i in range(len(COLS))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(COLS), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(rows: list) -> str:
    out = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def agreement_summary(a: dict, name: str) -> str:
    if not a:
        return "—"
    if name == "kmgrammar":
        if "audit_tokens" not in a or not a["audit_tokens"]:
            return "ref"
        bad = a["audit_errors"] + a["eos_errors"] + a["specials_allowed"]
        return f"oracle: {bad} wrong / {a['audit_tokens']:,}"
    s = f"{a['tokens_differing'] + a['eos_differing']} tok / {a['steps_differing']} of {a['steps_compared']} steps"
    return s


def findings(results: dict) -> list:
    """One line per disagreement, rejected document or kmgrammar audit error."""
    out = []
    for tname, tok in results["tokenizers"].items():
        for wname, w in tok.get("workloads", {}).items():
            for ename, e in w["engines"].items():
                acc = e.get("acceptance")
                if acc and acc["failed"]:
                    ex = ", ".join(f"{x['document']!r} (token {x['failed_at_token']} of {x['tokens']})"
                                   for x in acc["examples"][:8])
                    out.append(f"{tname}/{wname}/{ename}: rejects {acc['failed']} of "
                               f"{acc['documents']} valid documents, e.g. {ex}")
                a = e.get("agreement")
                if not a:
                    continue
                where = f"{tname}/{wname}/{ename}"
                if ename == "kmgrammar":
                    if a.get("audit_errors") or a.get("eos_errors") or a.get("specials_allowed"):
                        out.append(f"{where}: kmgrammar vs oracle: {a['audit_errors']} token errors, "
                                   f"{a['eos_errors']} EOS errors, {a['specials_allowed']} specials "
                                   f"allowed; e.g. {a['examples'][:3]}")
                    continue
                rej = a.get("rejected_document_token")
                if rej:
                    out.append(f"{where}: rejected the document's token {rej['token']} "
                               f"{rej['token_bytes']!r} after {rej['prefix']!r} (oracle: viable="
                               f"{rej['oracle_viable']}); its walk stops there")
                n = a["tokens_differing"] + a["eos_differing"]
                if n or a["specials_allowed"]:
                    v = a["verdict"]
                    ex = "; ".join(f"step {x['step']} after {x['prefix']!r} token {x['token']} "
                                   f"{x['token_bytes']!r}: km={x['kmgrammar']} peer={x['peer']} "
                                   f"oracle={x['oracle']}" for x in a["examples"][:4])
                    out.append(f"{where}: {n} differing tokens over {a['steps_differing']} steps "
                               f"(peer allows {a['peer_allows_extra']} extra, misses "
                               f"{a['peer_misses']}; EOS differs at {a['eos_differing']} steps; "
                               f"specials allowed {a['specials_allowed']}; "
                               f"{a.get('tokens_differing_where_forced', 0)} of them where the "
                               f"continuation is forced, "
                               f"{a.get('misses_after_match_before_last_byte', 0)} misses where the "
                               f"text up to the token's last byte is a full match); oracle sides with "
                               f"kmgrammar {v['kmgrammar']}, peer {v['peer']}, unknown "
                               f"{v['unknown']}. e.g. {ex}")
    return out


def cold_start_lines(tok: dict) -> list:
    out = []
    fp = tok.get("kmgrammar_first_compile_in_process_s")
    if fp is not None:
        out.append(f"kmgrammar first compile in this process (numba cache warm, not in the table): "
                   f"{fmt_time(fp)}")
    cs = tok.get("kmgrammar_cold_start") or {}
    c = cs.get("fresh_process_cached") or {}
    if "error" in c:
        out.append(f"fresh process: failed: {c['error']}")
    elif c:
        out.append(f"fresh process, email: import kmgrammar {fmt_time(c['import_s'])} + vocabulary "
                   f"{fmt_time(c['vocab_s'])} + first cached load {fmt_time(c['first_load_s'])} + "
                   f"first mask {fmt_time(c['first_mask_s'])}; wall incl. interpreter "
                   f"{fmt_time(c['wall_s'])}")
    w = cs.get("fresh_process_first_compile") or {}
    if "error" in w:
        out.append(f"fresh process, first compile: failed: {w['error']}")
    elif w:
        out.append(f"fresh process, numba cache warm: first compile of email (cache=False) "
                   f"{fmt_time(w['first_compile_s'])}")
    j = cs.get("fresh_process_first_jit") or {}
    if "error" in j:
        out.append(f"first compile with numba JIT: failed: {j['error']}")
    elif j:
        out.append(f"fresh process, empty numba cache: first compile of email (incl. JIT) "
                   f"{fmt_time(j['first_compile_s'])}")
    return out


def markdown_report(results: dict) -> str:
    """The README's results section: machine line, one table per tokenizer, cold starts, findings."""
    m = results["machine"]
    out = [f"{m['date'][:10]}, {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average "
           f"{m['loadavg_at_start'][0]:.1f} at start, {m['loadavg_at_end'][0]:.1f} at end "
           f"(the machine is shared). Versions: "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ". Settings: "
           + ", ".join(f"{k}={v}" for k, v in results["settings"].items()) + "."]
    for tname, tok in results["tokenizers"].items():
        if "skipped" in tok:
            out.append(f"\n**{tname}**: skipped ({tok['skipped']})")
            continue
        out.append(f"\n**{tok['tokenizer']}** ({tok['vocab_size']:,} tokens); mask times in µs\n")
        out.append(markdown_table(table_rows(tok)))
        out += [""] + [f"- {line}" for line in cold_start_lines(tok)]
    return "\n".join(out)


if __name__ == "__main__":
    import json
    import sys

    print(markdown_report(json.load(open(sys.argv[1], encoding="utf-8"))))
