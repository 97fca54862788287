"""Class selection (issue 11): --remove / --keep / per-class --strength parsing and its errors."""

from __future__ import annotations

import pytest

from vretouch_cli.classes import (
    CLASSES,
    TEMPORARY,
    default_vector,
    parse_selection,
    parse_strengths,
    resolve_selection,
    selection_vector,
)
from vretouch_cli.errors import UsageError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_vocabulary():
    assert CLASSES == ("acne", "redness", "marks", "mole", "freckle")
    assert TEMPORARY == ("acne", "redness", "marks")


@pytest.mark.parametrize(
    "remove, keep, expected",
    [
        (None, None, TEMPORARY),
        ("acne,redness,marks", None, TEMPORARY),
        (None, "mole,freckle", TEMPORARY),  # keeping what is kept anyway is allowed
        ("all", None, CLASSES),
        ("ALL", "mole", ("acne", "redness", "marks", "freckle")),  # 'all' names no class: no conflict
        (" Mole , acne ", None, ("acne", "mole")),  # CLASSES order, case and spaces ignored
        ("acne,acne,", None, ("acne",)),
        (None, "redness", ("acne", "marks")),
        (["acne", "mole"], None, ("acne", "mole")),  # the Python API takes sequences too
    ],
)
def test_parse_selection(remove, keep, expected):
    assert parse_selection(remove, keep) == expected


@pytest.mark.parametrize(
    "remove, keep, needle",
    [
        ("acne,pimple", None, "--remove: unknown class 'pimple'"),
        ("acen", None, "did you mean acne?"),
        (None, "beauty-mark", "--keep: unknown class 'beauty-mark'"),
        ("acne,mole", "mole", "--remove and --keep both name mole"),
        ("", None, "--remove needs at least one class"),
        (None, "acne,redness,marks", "nothing left to remove"),
        ("all", "all", "nothing left to remove"),
    ],
)
def test_parse_selection_errors_are_one_line_naming_the_classes(remove, keep, needle):
    with pytest.raises(UsageError) as exc:
        parse_selection(remove, keep)
    text = _one_line(exc)
    assert needle in text
    if "unknown" in needle or "needs" in needle or "nothing" in needle:
        assert "valid classes: acne, redness, marks, mole, freckle" in text
    assert exc.value.exit_code == 2


def test_parse_strengths():
    assert parse_strengths(1.0) == dict.fromkeys(CLASSES, 1.0)
    assert parse_strengths("0.7") == dict.fromkeys(CLASSES, 0.7)  # today's --strength 0.7
    assert parse_strengths(0) == dict.fromkeys(CLASSES, 0.0)
    assert parse_strengths(None) == dict.fromkeys(CLASSES, 1.0)
    s = parse_strengths("acne=1,redness=0.5")
    assert s == {"acne": 1.0, "redness": 0.5, "marks": 1.0, "mole": 1.0, "freckle": 1.0}
    s = parse_strengths("0.5, Acne = 1")
    assert s == {"acne": 1.0, "redness": 0.5, "marks": 0.5, "mole": 0.5, "freckle": 0.5}
    assert parse_strengths({"marks": 0.25})["marks"] == 0.25


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("2", "--strength must be between 0 and 1, got 2"),
        (-0.1, "--strength must be between 0 and 1"),
        ("nan", "between 0 and 1"),
        ("abc", "--strength 'abc' is not a number"),
        ("acne=2", "--strength acne must be between 0 and 1"),
        ("acne=x", "is not a number"),
        ("pimple=1", "--strength: unknown class 'pimple'; valid classes: acne, redness, marks, mole, freckle"),
        ("acne=1,acne=0.5", "names acne twice"),
        ("0.5,0.7", "two plain numbers"),
        ("", "--strength is empty"),
        ({"zits": 1}, "unknown class 'zits'"),
        (True, "--strength must be a number"),
    ],
)
def test_parse_strengths_errors(spec, needle):
    with pytest.raises(UsageError) as exc:
        parse_strengths(spec)
    assert needle in _one_line(exc)


def test_selection_vector_in_class_order():
    assert selection_vector(TEMPORARY) == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert selection_vector(("mole", "acne"), parse_strengths("acne=0.5")) == [0.5, 0.0, 0.0, 1.0, 0.0]
    assert selection_vector(("acne",), None, classes=("mole", "acne")) == [0.0, 1.0]
    assert default_vector() == selection_vector(TEMPORARY)
    with pytest.raises(UsageError, match="valid classes"):
        selection_vector(("wart",))


def test_resolve_selection_and_its_note():
    default = resolve_selection()
    assert default.classes == TEMPORARY and default.merged_strength == 1.0
    assert default.merges_cleanly and default.note() is None and default.note(CLASSES) is None
    assert default.vector() == [1.0, 1.0, 1.0, 0.0, 0.0]
    # today's single strength: still exactly what weights without class heads do
    plain = resolve_selection(strength="0.7")
    assert plain.merges_cleanly and plain.merged_strength == 0.7 and plain.note() is None
    assert plain.vector() == [0.7, 0.7, 0.7, 0.0, 0.0]
    # what weights without class heads cannot do: one line that says so (a note, not an error)
    for kwargs in (dict(keep="mole"), dict(remove="all"), dict(remove="acne"), dict(strength="acne=1,redness=0.5")):
        sel = resolve_selection(**kwargs)
        note = sel.note(())
        assert note and "\n" not in note and "no class heads" in note and "as a whole" in note, kwargs
        assert sel.note(CLASSES) is None
    assert resolve_selection(strength="acne=1,redness=0.5").merged_strength == 1.0
    assert "mole" in resolve_selection(remove="all").note(("acne", "redness", "marks"))
    # a strength for a class that is not removed would do nothing: an error
    with pytest.raises(UsageError) as exc:
        resolve_selection(strength="mole=0.5")
    assert "mole is not removed" in _one_line(exc)
    assert resolve_selection(remove="all", strength="mole=0.5").vector() == [1.0, 1.0, 1.0, 0.5, 1.0]
