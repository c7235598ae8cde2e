"""core.fastjson: the same JSON values as the json module, for anything a request can bring."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.fastjson import json_bytes

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(JSON)
def test_it_writes_what_json_reads_back_the_same(value):
    assert json.loads(json_bytes(value)) == value


@pytest.mark.parametrize("value", [{"big": 2**70}, {"neg": -(2**65)}, {1: "int key"}, ["ü", "\u2028", "😀"]])
def test_what_orjson_refuses_goes_through_the_json_module(value):
    assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))
