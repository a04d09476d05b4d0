"""lark-grammars' sqlite.lark on cl100k: differential against Lark (lexer="dynamic_complete").

The grammar is large (~190 case-insensitive keyword terminals, 43 recursive or shared rules, every
`x?` expanded by Lark into alternatives) and has no %ignore: statements are written without
spaces, identifiers are the literal `identifier`, `expr` is a literal value and a statement ends
with "\n". Statements Lark accepts are accepted token by token (cl100k's tokenization and random
splits, each token allowed by the mask first); statements it rejects are rejected; random walks
of the matcher parse with Lark.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from kmgrammar import Matcher, allocate_token_bitmask
from kmgrammar.compiler import compile_lark

from conftest import allowed, lark_accepts, random_split

GOOD = [
    "SELECT*FROMidentifier\n",
    "selectdistinctidentifier.*fromidentifierasidentifier\n",  # keywords are case-insensitive
    "SELECT*FROMidentifierJOINidentifierUSING(identifier)\n",
    "SELECT1UNIONALLSELECT2ORDERBY1LIMIT10\n",
    "WITHidentifierAS(SELECT1)SELECT*FROMidentifier\n",
    'INSERTINTOidentifier(identifier,identifier)VALUES(1,")\n',
    "INSERTORREPLACEINTOidentifierVALUES(1),(2.5)\n",
    "CREATETABLEIFNOTEXISTSidentifier(identifieridentifierPRIMARYKEYAUTOINCREMENT,identifieridentifierNOTNULL)\n",
    "CREATETABLEidentifier(identifieridentifier(10),identifierDEFAULT0,PRIMARYKEY(identifier))\n",
    "CREATEUNIQUEINDEXidentifierONidentifier(identifierDESC)\n",
    "UPDATEidentifierSETidentifier=1,identifier=NULLWHERE1\n",
    "BEGINTRANSACTION;COMMIT\n",
]
BAD = [
    "SELECT*FROMidentifier",  # no final "\n"
    "SELECT*FROM\n",
    "SELECT identifier FROM identifier\n",  # no %ignore: spaces are not allowed
    "INSERTINTOidentifierVALUES(1\n",
    "CREATETABLEidentifier()\n",  # at least one column
]


@pytest.fixture(scope="module")
def sqlite(shared, cl100k):
    from lark import Lark

    path = shared / "corpora" / "grammars" / "lark-grammars" / "lark_grammars" / "grammars" / "sqlite.lark"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    text = path.read_text("utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_lark(text, cl100k, cache=False, time_limit=600)
    return compiled, Lark(text, parser="earley", lexer="dynamic_complete")


def test_statements_lark_accepts_are_accepted_token_by_token(sqlite, cl100k):
    compiled, parser = sqlite
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    eos = cl100k.eos_token_ids[0]
    rng = random.Random(3)
    for s in GOOD:
        assert lark_accepts(parser, s), s
        data = s.encode()
        for ids in (cl100k.encode(s), random_split(data, cl100k, rng)):
            m = Matcher(compiled)
            for t in ids:
                assert allowed(m, bm, t), (s, cl100k.token_bytes[t])
                assert m.accept_token(t), (s, cl100k.token_bytes[t])
            assert allowed(m, bm, eos) and m.accept_token(eos), s
        # Any byte split through accept_string, in pieces.
        m = Matcher(compiled)
        cut = sorted(rng.sample(range(1, len(data)), 3))
        for a, b in zip([0] + cut, cut + [len(data)]):
            assert m.accept_string(data[a:b]), (s, data[a:b])
        assert m.is_accepting(), s


def test_statements_lark_rejects_are_rejected(sqlite):
    compiled, parser = sqlite
    for s in BAD:
        assert not lark_accepts(parser, s), s
        m = Matcher(compiled)
        assert not (m.accept_string(s) and m.is_accepting()), s


def test_random_walks_parse_with_lark(sqlite, cl100k):
    compiled, parser = sqlite
    bm = allocate_token_bitmask(1, cl100k.vocab_size)
    eos = set(cl100k.eos_token_ids)
    rng = random.Random(7)
    newline = cl100k.encode("\n")[0]
    got = 0
    for _ in range(8):
        m, out = Matcher(compiled), b""
        for _ in range(80):
            if m.is_accepting() and rng.random() < 0.3:
                break
            m.fill_next_token_bitmask(bm)
            ids = np.flatnonzero(np.unpackbits(bm[0].view(np.uint8), bitorder="little")[: cl100k.vocab_size])
            ids = [t for t in ids.tolist() if t not in eos]
            assert ids or m.is_accepting()
            if not ids:
                break
            if len(out) > 10 and newline in ids:  # end the statement list when it can end
                ids = [newline]
            # Short tokens half the time, so keywords get split and punctuation gets exercised.
            t = rng.choice(ids) if rng.random() < 0.5 else min(rng.sample(ids, min(8, len(ids))),
                                                                 key=lambda x: len(cl100k.token_bytes[x]))
            assert m.accept_token(t)
            out += cl100k.token_bytes[t]
        if not m.is_accepting():
            continue
        assert lark_accepts(parser, out.decode()), out
        got += 1
    assert got >= 2
