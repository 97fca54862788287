"""What to remove: the imperfection classes, the user's selection and per-class strengths (issue 11).

A retoucher removes what is temporary (``acne``: papules, pustules, red spots; ``redness``:
diffuse patches; ``marks``: small dark post-acne spots) and keeps what is the person (``mole``,
``freckle``). :data:`TEMPORARY` is the default selection.

The CLI and the Python API take the same three values, checked here before any work:

- ``remove``: a comma list of classes, or ``all`` (``None``: :data:`TEMPORARY`);
- ``keep``: a comma list of classes taken out of ``remove`` (naming a class in both is an error);
- ``strength``: a number in [0, 1] for every class (``0.7``, as before classes existed), or
  ``class=number`` items (``acne=1,redness=0.5``; classes not named keep 1, or the bare number
  when one is given too: ``0.5,acne=1``).

Pure Python: no torch, so the CLI can check options before anything heavy is imported.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .errors import UsageError

CLASSES: tuple[str, ...] = ("acne", "redness", "marks", "mole", "freckle")
TEMPORARY: tuple[str, ...] = ("acne", "redness", "marks")
ALL = "all"


def _valid(with_all: bool) -> str:
    names = ", ".join(CLASSES)
    return f"valid classes: {names}" + (f" (or {ALL})" if with_all else "")


def _unknown(flag: str, name: str, with_all: bool) -> UsageError:
    choices = list(CLASSES) + ([ALL] if with_all else [])
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UsageError(f"{flag}: unknown class {name!r}{hint}; {_valid(with_all)}")


def _items(value: str | Sequence[str]) -> list[str]:
    """Comma list (or a sequence of comma lists) → lower-case names, empty items dropped."""
    parts = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise UsageError(f"a class list holds names, not {type(part).__name__}")
        out.extend(p.strip().lower() for p in part.split(","))
    return [p for p in out if p]


def _names(flag: str, value: str | Sequence[str]) -> tuple[set[str], set[str]]:
    """(every class the list stands for, the classes it names explicitly)."""
    items = _items(value)
    if not items:
        raise UsageError(f"{flag} needs at least one class; {_valid(True)}")
    expanded: set[str] = set()
    named: set[str] = set()
    for name in items:
        if name == ALL:
            expanded.update(CLASSES)
        elif name in CLASSES:
            expanded.add(name)
            named.add(name)
        else:
            raise _unknown(flag, name, with_all=True)
    return expanded, named


def _ordered(names: set[str]) -> tuple[str, ...]:
    return tuple(c for c in CLASSES if c in names)


def parse_selection(remove: str | Sequence[str] | None = None, keep: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The classes to remove, in :data:`CLASSES` order.

    ``remove`` None means :data:`TEMPORARY`; ``all`` stands for every class. ``keep`` takes
    classes out of that selection. A class named in both is an error (``--remove all --keep
    mole`` is fine: ``all`` names no class), and so is a selection left empty. Raises
    :class:`UsageError` with one line that names the valid classes.
    """
    if remove is None:
        selected, named_remove = set(TEMPORARY), set()
    else:
        selected, named_remove = _names("--remove", remove)
    if keep is not None:
        kept, named_keep = _names("--keep", keep)
        both = _ordered(named_remove & named_keep)
        if both:
            raise UsageError(f"--remove and --keep both name {', '.join(both)}: choose one")
        selected -= kept
    if not selected:
        raise UsageError(f"nothing left to remove: --keep takes every selected class out; {_valid(True)}")
    return _ordered(selected)


def _number(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a number; give 0–1, or class=number items such as acne=1,redness=0.5") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{flag} must be between 0 and 1, got {text}")
    return value


def _strength_items(spec) -> tuple[float | None, dict[str, float]]:
    """(the bare number or None, the per-class values named) of a ``strength`` spec."""
    flag = "--strength"
    if spec is None:
        return None, {}
    if isinstance(spec, bool):
        raise UsageError(f"{flag} must be a number between 0 and 1, not {spec}")
    if isinstance(spec, (int, float)):
        return _number(flag, repr(float(spec))), {}
    if isinstance(spec, Mapping):
        named: dict[str, float] = {}
        for key, value in spec.items():
            name = str(key).strip().lower()
            if name not in CLASSES:
                raise _unknown(flag, name, with_all=False)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise UsageError(f"{flag} {name}= must be a number between 0 and 1, not {value!r}")
            named[name] = _number(f"{flag} {name}", str(value))
        return None, named
    if not isinstance(spec, str):
        raise UsageError(f"{flag} must be a number, a string such as acne=1,redness=0.5, or a mapping; not {type(spec).__name__}")
    base: float | None = None
    named = {}
    items = [p.strip() for p in spec.split(",") if p.strip()]
    if not items:
        raise UsageError(f"{flag} is empty; give 0–1, or class=number items such as acne=1,redness=0.5")
    for item in items:
        if "=" not in item:
            if base is not None:
                raise UsageError(f"{flag} {spec!r} has two plain numbers; give one for every class, then class=number items")
            base = _number(flag, item)
            continue
        name, _, value = (s.strip() for s in item.partition("="))
        name = name.lower()
        if name not in CLASSES:
            raise _unknown(flag, name, with_all=False)
        if name in named:
            raise UsageError(f"{flag} names {name} twice")
        named[name] = _number(f"{flag} {name}", value)
    return base, named


def parse_strengths(spec: float | str | Mapping[str, float] | None = 1.0) -> dict[str, float]:
    """Per-class strengths in [0, 1], one for every class of :data:`CLASSES`.

    ``0.7`` (number or string) gives every class 0.7, as the single ``--strength`` always did;
    ``"acne=1,redness=0.5"`` or ``{"acne": 1, "redness": 0.5}`` sets those classes and leaves the
    others at 1 (or at the bare number of ``"0.5,acne=1"``). Raises :class:`UsageError`.
    """
    base, named = _strength_items(spec)
    fill = 1.0 if base is None else base
    return {c: named.get(c, fill) for c in CLASSES}


def selection_vector(selected: Sequence[str], strengths: Mapping[str, float] | None = None, classes: Sequence[str] = CLASSES) -> list[float]:
    """The model's selection input: for each class of ``classes`` (default :data:`CLASSES` order)
    its strength when selected (1 without ``strengths``), else 0."""
    chosen = set(selected)
    unknown = sorted(chosen - set(CLASSES))
    if unknown:
        raise _unknown("selection", unknown[0], with_all=False)
    return [(1.0 if strengths is None else float(strengths[c])) if c in chosen else 0.0 for c in classes]


def default_vector(classes: Sequence[str] = CLASSES) -> list[float]:
    """:data:`TEMPORARY` at full strength, in the order of ``classes``."""
    return [1.0 if c in TEMPORARY else 0.0 for c in classes]


@dataclass(frozen=True)
class Selection:
    """A checked ``remove`` / ``keep`` / ``strength`` triple (build it with :func:`resolve_selection`)."""

    classes: tuple[str, ...]  # selected, in CLASSES order
    strengths: dict[str, float]  # every class of CLASSES → strength in [0, 1]
    kept: tuple[str, ...] = ()  # classes the user named in keep (asked to be preserved)

    def vector(self, classes: Sequence[str] = CLASSES) -> list[float]:
        """Selection input of a model whose class heads are ``classes`` (see :func:`selection_vector`)."""
        return selection_vector(self.classes, self.strengths, classes)

    @property
    def merged_strength(self) -> float:
        """The one strength for weights without class heads: the largest selected one."""
        return max(self.strengths[c] for c in self.classes)

    @property
    def merges_cleanly(self) -> bool:
        """True when weights without class heads do exactly what was asked: the default classes,
        no class asked to be kept, one strength for all of them (``--strength 0.7`` included)."""
        return self.classes == TEMPORARY and not self.kept and len({self.strengths[c] for c in self.classes}) == 1

    def describe(self) -> str:
        """``remove acne=1, redness=0.5; keep mole, freckle`` (one line)."""
        removed = ", ".join(f"{c}={self.strengths[c]:g}" for c in self.classes)
        others = [c for c in CLASSES if c not in self.classes]
        return f"remove {removed}" + (f"; keep {', '.join(others)}" if others else "")

    def note(self, model_classes: Sequence[str] = ()) -> str | None:
        """One line for the user when the weights cannot do what was asked, else None.

        Weights without class heads (``model_classes`` empty) retouch every class at once: a
        selection other than the default is applied as a whole, at :attr:`merged_strength`.
        Weights with class heads leave alone any selected class they have no head for.
        """
        if not model_classes:
            if self.merges_cleanly:
                return None
            return (
                f"these weights have no class heads, so the selection ({self.describe()}) is applied as a whole: "
                f"every kind of imperfection is merged into one map, at strength {self.merged_strength:g}"
            )
        missing = [c for c in self.classes if c not in model_classes and self.strengths[c] > 0]
        if missing:
            return f"these weights have no head for {', '.join(missing)} (they know {', '.join(model_classes)}): those are not removed"
        return None


def resolve_selection(
    remove: str | Sequence[str] | None = None,
    keep: str | Sequence[str] | None = None,
    strength: float | str | Mapping[str, float] | None = 1.0,
) -> Selection:
    """Check ``remove``, ``keep`` and ``strength`` together (one :class:`UsageError` line each).

    Besides :func:`parse_selection` and :func:`parse_strengths`: a strength named for a class that
    is not removed is an error (it would do nothing).
    """
    classes = parse_selection(remove, keep)
    _, named = _strength_items(strength)
    idle = [c for c in named if c not in classes]
    if idle:
        raise UsageError(f"--strength {idle[0]}=…: {idle[0]} is not removed (removed: {', '.join(classes)}); add it to --remove or drop it")
    kept: tuple[str, ...] = ()
    if keep is not None:
        kept = _ordered(_names("--keep", keep)[0])
    return Selection(classes, parse_strengths(strength), kept)
