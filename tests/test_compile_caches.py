"""Per-process caches of the compilers: reused results equal fresh ones, limits still apply."""

import pytest

from kmgrammar import grammar as g
from kmgrammar import jsonschema_containers as jc
from kmgrammar import jsonschema_values as jv
from kmgrammar.automaton import Limits
from kmgrammar.errors import CompileLimitError


def _same(a, b):
    return (a.trans.shape == b.trans.shape and (a.trans == b.trans).all() and (a.classes == b.classes).all()
            and (a.accept == b.accept).all())


def test_other_keys_shared_and_equal_to_a_fresh_build():
    lim = Limits()
    names = ("name", "value", "zzz-unusual")
    got = jc._other_keys(names, lim)
    assert jc._other_keys(names, lim) is got
    assert not got.trans.flags.writeable
    fresh = jv.difference(jv.quoted_key(jv.build(jv.length_node(0, None), lim), lim),
                          jv.build(g.alt(*[g.text(f'"{n}"') for n in names]), lim), lim)
    assert _same(got, fresh)


def test_other_keys_below_the_cached_max_states_is_built_afresh():
    names = ("alpha", "beta", "gamma-delta")
    jc._other_keys(names, Limits())
    with pytest.raises(CompileLimitError):
        jc._other_keys(names, Limits(max_states=3))
