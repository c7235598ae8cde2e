"""The comparison rules, one by one, and the diff they produce. Pure Python."""

import pytest

from deployments.errors import InvalidInput
from reviews.shadow.compare import Rules, compare, rules_validate


def cmp(ai, human, rules=None, ai_type="t", human_type="t"):
    return compare(
        ai_type=ai_type, ai_payload=ai, human_type=human_type, human_payload=human, rules=Rules.from_json(rules)
    )


def test_equal_payloads_agree_with_an_empty_diff():
    assert cmp({"a": 1, "b": [1, 2], "c": {"d": "x"}}, {"c": {"d": "x"}, "b": [1, 2], "a": 1}) == {
        "agree": True,
        "diff": [],
    }


def test_action_type_must_match():
    r = cmp({"a": 1}, {"a": 1}, ai_type="refund.issue", human_type="refund.deny")
    assert r == {
        "agree": False,
        "diff": [{"path": "action_type", "kind": "action_type", "ai": "refund.issue", "human": "refund.deny"}],
    }


def test_field_level_diff_names_each_path_and_kind():
    r = cmp(
        {"amount": 10, "customer": {"email": "a@x"}, "only_ai": 1, "items": [{"sku": "A"}, {"sku": "B"}]},
        {"amount": 12, "customer": {"email": "b@x"}, "only_human": 2, "items": [{"sku": "A"}, {"sku": "C"}]},
    )
    assert r["agree"] is False
    assert r["diff"] == [
        {"path": "amount", "kind": "changed", "ai": 10, "human": 12},
        {"path": "customer.email", "kind": "changed", "ai": "a@x", "human": "b@x"},
        {"path": "items[1].sku", "kind": "changed", "ai": "B", "human": "C"},
        {"path": "only_ai", "kind": "missing_in_human", "ai": 1, "human": None},
        {"path": "only_human", "kind": "missing_in_ai", "ai": None, "human": 2},
    ]


def test_types_matter_without_rules():
    assert not cmp({"a": 1}, {"a": "1"})["agree"]
    assert not cmp({"a": True}, {"a": 1})["agree"]
    assert cmp({"a": 1}, {"a": 1.0})["agree"]  # the same JSON number


def test_ignore_skips_a_field_and_everything_under_it():
    ai, human = {"a": 1, "meta": {"trace": "x", "n": 1}, "note": "x"}, {"a": 1, "meta": {"trace": "y"}, "note": "y"}
    assert not cmp(ai, human)["agree"]
    assert cmp(ai, human, {"ignore": ["meta", "note"]})["agree"]
    r = cmp(ai, human, {"ignore": ["meta.trace", "note"]})
    assert [d["path"] for d in r["diff"]] == ["meta.n"]


def test_ignore_applies_inside_lists_without_positions():
    ai, human = {"items": [{"sku": "A", "id": 1}]}, {"items": [{"sku": "A", "id": 2}]}
    assert cmp(ai, human, {"ignore": ["items.id"]})["agree"]


def test_numeric_tolerance_global_and_per_field():
    assert not cmp({"x": 100, "y": 1.0}, {"x": 103, "y": 1.05})["agree"]
    assert cmp({"x": 100, "y": 1.0}, {"x": 103, "y": 1.05}, {"numeric_tolerance": 5})["agree"]
    r = cmp({"x": 100, "y": 1.0}, {"x": 103, "y": 1.05}, {"numeric_tolerance": 0.1, "field_tolerances": {"x": 2}})
    assert r["diff"] == [{"path": "x", "kind": "changed", "ai": 100, "human": 103}]
    assert cmp({"x": 100}, {"x": 102}, {"field_tolerances": {"x": 2}})["agree"]  # inclusive bound


def test_tolerance_does_not_make_strings_or_booleans_numbers():
    assert not cmp({"x": "100"}, {"x": "101"}, {"numeric_tolerance": 5})["agree"]
    assert not cmp({"x": True}, {"x": False}, {"numeric_tolerance": 5})["agree"]


def test_case_insensitive_everywhere_or_on_paths():
    ai, human = {"reason": "Damaged", "code": "ABC"}, {"reason": "damaged", "code": "abc"}
    assert not cmp(ai, human)["agree"]
    assert cmp(ai, human, {"case_insensitive": True})["agree"]
    r = cmp(ai, human, {"case_insensitive": ["reason"]})
    assert [d["path"] for d in r["diff"]] == ["code"]


def test_lists_as_sets_ignore_order_and_repeats():
    ai, human = {"tags": ["b", "a", "a"], "steps": [1, 2]}, {"tags": ["a", "b"], "steps": [2, 1]}
    assert not cmp(ai, human)["agree"]
    r = cmp(ai, human, {"lists_as_sets": ["tags"]})
    assert [d["path"] for d in r["diff"]] == ["steps[0]", "steps[1]"]
    assert cmp(ai, human, {"lists_as_sets": True})["agree"]


def test_set_diff_lists_what_only_one_side_has():
    r = cmp({"tags": ["a", "b"]}, {"tags": ["b", "c"]}, {"lists_as_sets": ["tags"]})
    assert r["diff"] == [
        {"path": "tags", "kind": "set", "ai": ["a", "b"], "human": ["b", "c"], "only_ai": ["a"], "only_human": ["c"]}
    ]


def test_sets_combine_with_case_and_objects():
    rules = {"lists_as_sets": ["items"], "case_insensitive": ["items.sku"]}
    ai = {"items": [{"sku": "A", "q": 1}, {"sku": "b", "q": 2}]}
    human = {"items": [{"q": 2, "sku": "B"}, {"q": 1, "sku": "a"}]}
    assert cmp(ai, human, rules)["agree"]


def test_rules_validate_canonicalises_and_refuses_nonsense():
    assert rules_validate({}) == {}
    assert rules_validate({"ignore": [" a "], "case_insensitive": False, "lists_as_sets": True}) == {
        "ignore": ["a"],
        "lists_as_sets": True,
    }
    for bad, key in [
        ({"ignore": "a"}, "ignore"),
        ({"numeric_tolerance": -1}, "numeric_tolerance"),
        ({"numeric_tolerance": True}, "numeric_tolerance"),
        ({"field_tolerances": {"x": "a"}}, "field_tolerances.x"),
        ({"case_insensitive": "yes"}, "case_insensitive"),
        ({"typo": 1}, "typo"),
        ([1], "object"),
    ]:
        with pytest.raises(InvalidInput, match=key):
            rules_validate(bad)
