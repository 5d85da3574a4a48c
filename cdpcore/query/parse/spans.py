"""Source spans of sqlglot nodes, found from the token list.

sqlglot records positions only on identifiers, literals and function names; `_Spans`
derives every other node's span from its children and the tokens around them, so each
IR node and each error can point at the text it came from.
"""
from __future__ import annotations

import bisect
import re

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import Token, TokenType

from ..ir import Span

_TYPES = frozenset(DuckDB.Parser.TYPE_TOKENS)
# node type → (a token that may precede it, possibly across '(' ; tokens that may follow it)
_AFFIXES: dict[type, tuple[frozenset[TokenType], frozenset[TokenType]]] = {
    cls: (frozenset(before), frozenset(after)) for cls, before, after in (
        (exp.Not, {TokenType.NOT}, ()), (exp.Neg, {TokenType.DASH}, ()),
        (exp.Paren, {TokenType.L_PAREN}, ()), (exp.Having, {TokenType.HAVING}, ()),
        (exp.Join, {TokenType.JOIN, TokenType.COMMA}, ()), (exp.With, {TokenType.WITH}, ()),
        (exp.Qualify, {TokenType.QUALIFY}, ()), (exp.Select, {TokenType.SELECT}, ()),
        (exp.Distinct, {TokenType.DISTINCT}, ()), (exp.Exists, {TokenType.EXISTS}, ()),
        (exp.Case, {TokenType.CASE}, {TokenType.END}), (exp.If, {TokenType.WHEN}, ()),
        (exp.Cast, _TYPES, _TYPES | {TokenType.DCOLON}),  # TIMESTAMP '…', '…'::TIMESTAMP
    )
}
_CLAUSE_KEYWORDS: dict[type, TokenType] = {exp.Limit: TokenType.LIMIT,
                                           exp.Offset: TokenType.OFFSET}
_ANCHOR_TOKENS: dict[type, tuple[TokenType, ...]] = {
    exp.Boolean: (TokenType.TRUE, TokenType.FALSE), exp.Null: (TokenType.NULL,),
    exp.Distinct: (TokenType.DISTINCT,), exp.Literal: (TokenType.NUMBER, TokenType.STRING),
    exp.CurrentTimestamp: (TokenType.CURRENT_TIMESTAMP,),
}
# Constructs outside the subset, by the name errors give them. sqlglot files some of them
# (CASE, EXISTS, ...) under Func, so `_is_call` leaves them out.
_CONSTRUCTS: dict[type, str] = {
    exp.Subquery: "subquery", exp.Select: "subquery", exp.Exists: "subquery",
    exp.Window: "window function", exp.Distinct: "DISTINCT", exp.Escape: "LIKE ... ESCAPE",
    exp.Case: "CASE", exp.If: "IF", exp.Cast: "CAST", exp.Alias: "alias",
    exp.Tuple: "tuple", exp.Star: "*", exp.Placeholder: "placeholder",
    exp.Mul: "arithmetic", exp.Div: "arithmetic", exp.Mod: "arithmetic",
    exp.DPipe: "string concatenation",
}


class _Spans:
    """Source spans of sqlglot nodes.

    sqlglot records positions only on identifiers, literals and function names. Other
    nodes cover their children, plus the tokens sqlglot drops: a prefix NOT or '-', the
    parentheses of calls and lists; keyword leaves (TRUE, NULL, INTERVAL ...) are found in
    the token list after their previous sibling.
    """

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.starts = [t.start for t in tokens]
        self._memo: dict[int, Span] = {}

    def prime(self, root: exp.Expression) -> None:
        """Compute every span children first, so no lookup recurses deeply (long AND chains)."""
        for node in reversed(list(root.bfs())):
            self.of(node)

    def of(self, node: exp.Expression) -> Span:
        key = id(node)
        if key not in self._memo:
            self._memo[key] = self._compute(node)
        return self._memo[key]

    def _compute(self, node: exp.Expression) -> Span:
        if isinstance(node, exp.Interval):  # sqlglot re-splits its literal, losing positions
            return self._interval(node)
        if type(node) in _CLAUSE_KEYWORDS:  # a SELECT's args are not in text order
            return self._clause(node, _CLAUSE_KEYWORDS[type(node)])
        children = (c for c in node.iter_expressions() if not isinstance(c, exp.DataType))
        parts = [s for s in (_own(node), *map(self.of, children))
                 if s is not None and s.end > s.start]
        if not parts:
            return self._orphan(node)
        span = Span(min(s.start for s in parts), max(s.end for s in parts))
        return self._close(node, self._affix(node, span))

    def _index(self, offset: int) -> int:
        """Index of the first token starting at or after `offset`."""
        return bisect.bisect_left(self.starts, offset)

    def _token_span(self, first: int, last: int) -> Span:
        return Span(self.tokens[first].start, self.tokens[last].end + 1)

    def _affix(self, node: exp.Expression, span: Span) -> Span:
        """Take in the keywords sqlglot drops around a node: `NOT x`, `CASE … END`."""
        before, after = _AFFIXES.get(type(node), ((), ()))
        i, start = self._index(span.start) - 1, span.start
        while i >= 0 and self.tokens[i].token_type == TokenType.L_PAREN \
                and TokenType.L_PAREN not in before:
            i -= 1
        if i >= 0 and self.tokens[i].token_type in before:
            start = self.tokens[i].start
        j = self._index(span.end)
        while j < len(self.tokens) and self.tokens[j].token_type in after:
            j += 1
        return Span(start, max(span.end, self.tokens[j - 1].end + 1 if j else 0))

    def _close(self, node: exp.Expression, span: Span) -> Span:
        """Extend over the ')' that balance the '(' inside (and a call's empty '()')."""
        first, after = self._index(span.start), self._index(span.end)
        depth = sum(_paren_delta(t) for t in self.tokens[first:after])
        if _is_call(node):
            first, depth, after = self._call_parens(node, first, depth, after)
        while depth > 0 and after < len(self.tokens) \
                and self.tokens[after].token_type == TokenType.R_PAREN:
            depth, after = depth - 1, after + 1
        start = min(span.start, self.tokens[first].start) if self.tokens else span.start
        return Span(start, max(span.end, self.tokens[after - 1].end + 1))

    def _call_parens(self, node: exp.Func, first: int, depth: int,
                     after: int) -> tuple[int, int, int]:
        """Take in a call's `name(` when sqlglot kept no name position, and an empty `()`."""
        tokens = self.tokens
        if _own(node) is None and first >= 2 and tokens[first - 1].token_type == TokenType.L_PAREN:
            first, depth = first - 2, depth + 1
        if after < len(tokens) and tokens[after].token_type == TokenType.L_PAREN:
            depth, after = depth + 1, after + 1
        return first, depth, after

    def _orphan(self, node: exp.Expression) -> Span:
        lower = self._lower_bound(node)
        types = _ANCHOR_TOKENS.get(type(node))
        for i in range(self._index(lower), len(self.tokens)):
            if types is None or self.tokens[i].token_type in types:
                return self._token_span(i, i)
        return Span(lower, lower)

    def _interval(self, node: exp.Interval) -> Span:
        i = self._index(self._lower_bound(node))
        while i < len(self.tokens) and self.tokens[i].token_type != TokenType.INTERVAL:
            i += 1
        if i + 1 >= len(self.tokens):
            return self._orphan(node)
        last = i + 1
        # `INTERVAL 3 DAY`: a value without letters takes its unit from the next token
        if node.args.get("unit") and last + 1 < len(self.tokens) \
                and not re.search("[A-Za-z]", self.tokens[last].text):
            last += 1
        return self._token_span(i, last)

    def _clause(self, node: exp.Expression, keyword: TokenType) -> Span:
        """`LIMIT <value>`: the keyword and the value after it (with its sign)."""
        found = [i for i, t in enumerate(self.tokens) if t.token_type == keyword]
        if not found or found[0] + 1 >= len(self.tokens):
            return self.of(node.expression) if node.expression else Span(0, 0)
        last = found[0] + 1
        if self.tokens[last].token_type == TokenType.DASH and last + 1 < len(self.tokens):
            last += 1
        return self._token_span(found[0], last)

    def _lower_bound(self, node: exp.Expression) -> int:
        """Where `node`'s text can start at the earliest: after its previous sibling."""
        while node.parent is not None:
            parent, previous = node.parent, None
            for sibling in parent.iter_expressions():
                if sibling is node:
                    break
                previous = sibling
            if previous is not None:
                return self.of(previous).end
            own = _own(parent)
            if own is not None:
                return own.end
            node = parent
        return 0


def _own(node: exp.Expression) -> Span | None:
    start, end = node.meta_get("start"), node.meta_get("end")
    return Span(start, end + 1) if start is not None and end is not None else None


def _is_call(node: exp.Expression) -> bool:
    """A call written `name(...)`; sqlglot also files AND, OR, CASE, EXISTS under Func."""
    return isinstance(node, exp.Func) and not isinstance(node, exp.Binary) \
        and type(node) not in _CONSTRUCTS


_PAREN_DELTA = {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}


def _paren_delta(token: Token) -> int:
    return _PAREN_DELTA.get(token.token_type, 0)
