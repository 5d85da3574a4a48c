"""Rules represent the rewrites every predicate goes through before planning.

Each rule is a pure function Predicate → Predicate, kept in the RULES tuple (as sqlglot's
optimizer keeps its passes), and testable alone. `normalize` applies them until nothing
changes. Afterwards:

- there is no `Not` anywhere: negation lives in the leaves (`Compare.op`, `negated`);
- `And`/`Or` have at least two children, none of the same kind as the parent, none a
  `Const`, and no two alike;
- a `Const` appears only as the whole predicate.

Every rewrite is exact under SQL's three-valued logic (Kleene): De Morgan holds there,
and negating a leaf gives a leaf that is unknown exactly where the original is (see
`_negate_leaf`). The engine may then treat "unknown" as "no match" leaf by leaf.
Flipping `<` to `>=` also relies on stored values being totally ordered: ingest rejects
NaN, the one float that is not.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .ir import (LEAVES, NEGATED_OP, And, Compare, Const, Has, InSegment, InSet, IsNull, Like,
                 Not, Or, Predicate)

Rule = Callable[[Predicate], Predicate]


def push_not_down(pred: Predicate) -> Predicate:
    """Remove every Not by De Morgan and by negating leaves in place."""
    return _push(pred, negate=False)


def _push(pred: Predicate, negate: bool) -> Predicate:
    if isinstance(pred, Not):
        inner = _push(pred.child, not negate)
        # a Not's span covers the whole negated text; a cancelled pair keeps the inner one
        return inner if negate else replace(inner, span=pred.span)
    if isinstance(pred, (And, Or)):
        children = tuple(_push(c, negate) for c in pred.children)
        kind = _DUAL[type(pred)] if negate else type(pred)
        return kind(children, span=pred.span)
    return _negate_leaf(pred) if negate else pred


_DUAL: dict[type, type] = {And: Or, Or: And}


def _negate_leaf(pred: Predicate) -> Predicate:
    """The leaf that is true where `pred` is false, false where true, unknown where unknown.

    Comparisons, IN, LIKE and has* are unknown on a null field and so are their
    negations; IS NULL is never unknown. Const is never unknown either: it is true or
    false for every live profile, so flipping it is exact.
    """
    if isinstance(pred, Compare):
        return replace(pred, op=NEGATED_OP[pred.op])
    if isinstance(pred, (InSet, Like, IsNull, Has, InSegment)):
        return replace(pred, negated=not pred.negated)
    if isinstance(pred, Const):
        return replace(pred, value=not pred.value)
    raise TypeError(f"not a predicate: {pred!r}")


def flatten(pred: Predicate) -> Predicate:
    """And(And(a, b), c) → And(a, b, c), and likewise for Or, at every level."""
    if isinstance(pred, Not):
        return Not(flatten(pred.child), span=pred.span)
    if not isinstance(pred, (And, Or)):
        return pred
    children: list[Predicate] = []
    for child in (flatten(c) for c in pred.children):
        children.extend(child.children if type(child) is type(pred) else (child,))
    return type(pred)(tuple(children), span=pred.span)


def fold_constants(pred: Predicate) -> Predicate:
    """Drop neutral Const children, collapse on absorbing ones (Kleene: F∧x = F, T∨x = T)."""
    if isinstance(pred, Not):
        return Not(fold_constants(pred.child), span=pred.span)
    if not isinstance(pred, (And, Or)):
        return pred
    absorbing = isinstance(pred, Or)  # Or is decided by a TRUE child, And by a FALSE one
    children = [fold_constants(c) for c in pred.children]
    if any(isinstance(c, Const) and c.value is absorbing for c in children):
        return Const(absorbing, span=pred.span)
    kept = tuple(c for c in children if not isinstance(c, Const))
    return _collapse(type(pred), kept, pred, empty=not absorbing)


def drop_duplicates(pred: Predicate) -> Predicate:
    """a AND a → a (idempotence holds in three-valued logic too). Spans are ignored."""
    if isinstance(pred, Not):
        return Not(drop_duplicates(pred.child), span=pred.span)
    if not isinstance(pred, (And, Or)):
        return pred
    kept = tuple(dict.fromkeys(drop_duplicates(c) for c in pred.children))
    return _collapse(type(pred), kept, pred, empty=isinstance(pred, And))


def _collapse(kind: type, children: tuple[Predicate, ...], source: Predicate,
              empty: bool) -> Predicate:
    """A connective over `children`; one child stands alone, none is Const(empty)."""
    if not children:
        return Const(empty, span=source.span)
    if len(children) == 1:
        return children[0]
    return kind(children, span=source.span)


RULES: tuple[Rule, ...] = (push_not_down, flatten, fold_constants, drop_duplicates)


def normalize(pred: Predicate | None) -> Predicate | None:
    """Apply RULES until the predicate stops changing (each pass only shrinks it).

    None, the empty condition that matches every profile, passes through unchanged.
    """
    if pred is None:
        return None
    while True:
        before = pred
        for rule in RULES:
            pred = rule(pred)
        if pred == before:
            return pred


def is_normal(pred: Predicate) -> bool:
    """True when `pred` has the shape `normalize` promises (used by tests and asserts)."""
    if isinstance(pred, LEAVES) or isinstance(pred, Const):
        return True
    if isinstance(pred, Not):
        return False
    return len(pred.children) >= 2 and all(
        type(c) is not type(pred) and not isinstance(c, Const) and is_normal(c)
        for c in pred.children) and len(set(pred.children)) == len(pred.children)
