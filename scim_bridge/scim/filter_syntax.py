"""Reading SCIM filter text (RFC 7644 §3.4.2.2) into scim2-filter-parser's AST.

Only the library's lexer and parser are used. Around them:

- Literals: strings follow JSON's rules, as compValue does in §3.4.2.2, so a group named
  ``Sales "EMEA"`` is found with ``displayName eq "Sales \\"EMEA\\""`` (the library's lexer
  knows no escapes; its string rule is replaced). A backslash that starts no JSON escape
  stands for itself (``"CONTOSO\\jdoe"`` sent unescaped). true/false/null become Python
  values; integers keep their digits as text (the lexer reads one digit at a time; no
  attribute here is numeric).
- Precedence: the library gives "and" and "or" equal precedence; the tree is regrouped so
  "and" binds tighter, as §3.4.2.2 requires.
- Legacy unquoted values (idp-quirks C7, C8): Entra's old docs send ``externalId eq jyoung``
  and ``id eq 2819c223-... and manager eq 0e1f...``. Text that does not parse is retried once
  with each bare word after a comparison operator quoted, unless it is true, false, null or a
  JSON number. If the retry fails too, the error describes the original text.
- Hostile input: at most 4096 characters, 200 comparisons and 32 levels of nesting. A string
  that cannot be stored (an unpaired surrogate, NUL, raw or as ``\\u0000``) is refused here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from ..errors import InvalidFilter

__all__ = [
    "MAX_COMPARISONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "QUOTED",
    "operands",
    "parse",
]

MAX_LENGTH = 4096
MAX_COMPARISONS = 200
MAX_DEPTH = 32

_COMPARISON_TOKENS = frozenset({"EQ", "NE", "CO", "SW", "EW", "GT", "GE", "LT", "LE", "PR"})
_LITERAL_TOKENS = {"TRUE": True, "FALSE": False, "NULL": None}
#: A quoted string in filter text: JSON's, where a backslash escapes the next character.
QUOTED = r'"(?:[^"\\]|\\.)*"'
_ESCAPE_OR_BACKSLASH = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])|\\')


def parse(text: str) -> ast.Filter:
    """Parse a filter, retrying once with bare values quoted (the legacy policy above)."""
    if not text or not text.strip():
        raise InvalidFilter('The filter is empty; expected something like userName eq "bjensen"')
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(f"The filter is longer than {MAX_LENGTH} characters")
    try:
        return _parse_once(text)
    except _Unparsable as problem:
        quoted = _quote_bare_values(text)
        if quoted != text:
            try:
                return _parse_once(quoted)
            except _Unparsable:
                pass
        raise InvalidFilter(f"Invalid filter: {problem}") from None


def _string_value(literal: str) -> str:
    """The value of a quoted string token: JSON escapes decoded, any other backslash kept."""
    body = _ESCAPE_OR_BACKSLASH.sub(
        lambda match: match.group() if len(match.group()) > 1 else "\\\\", literal[1:-1]
    )
    value: str = json.loads(f'"{body}"', strict=False)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFilter(f"The filter string {literal} holds an unpaired \\u escape") from None
    if "\x00" in value:  # no database stores NUL; PostgreSQL refuses it in a bound parameter
        raise InvalidFilter(
            f"The filter string {literal} holds a NUL character, which no value may hold"
        )
    return value


_STRING_RULE = QUOTED  # in a sly lexer's body a capitalised name means a token, not a global


class _Lexer(SCIMLexer):
    """The library's lexer with JSON strings (its own rule ends a string at any quote)."""

    tokens = SCIMLexer.tokens

    @_(_STRING_RULE)  # type: ignore[name-defined]  # noqa: F821 (sly provides ``_`` in the class body)
    def COMP_VALUE(self, token: Any) -> Any:
        token.value = _string_value(token.value)
        return token


class _Unparsable(Exception):
    """The text is not a filter; the message says where."""


def _parse_once(text: str) -> ast.Filter:
    tokens = _Tokens(text)
    try:
        tree = SCIMParser().parse(iter(tokens))
    except ValueError:  # the lexer's "Illegal character"
        raise _Unparsable(tokens.illegal_character()) from None
    except SCIMParserError:
        raise _Unparsable(tokens.unexpected()) from None
    except RecursionError:
        raise InvalidFilter("The filter is nested too deeply") from None
    if not isinstance(tree, ast.Filter):
        raise _Unparsable("the filter is incomplete")
    return _regroup(tree)


class _Tokens:
    """The lexer's tokens with literals typed, digit runs joined into one number (the lexer
    reads one digit at a time) and the input limits enforced; remembers where it got to."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.last: Any = None
        self.lexed_to = 0
        self.finished = False

    def __iter__(self) -> Iterator[Any]:
        depth = comparisons = 0
        for token in self._joined(_Lexer().tokenize(self.text)):
            if token.type in ("LPAREN", "LBRACKET"):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InvalidFilter(f"The filter is nested more than {MAX_DEPTH} levels deep")
            elif token.type in ("RPAREN", "RBRACKET"):
                depth -= 1
            elif token.type in _COMPARISON_TOKENS:
                comparisons += 1
                if comparisons > MAX_COMPARISONS:
                    raise InvalidFilter(f"The filter has more than {MAX_COMPARISONS} comparisons")
            elif token.type in _LITERAL_TOKENS:
                token.value = _LITERAL_TOKENS[token.type]
            self.last = token
            yield token
        self.finished = True

    def _joined(self, tokens: Iterable[Any]) -> Iterator[Any]:
        pending = None
        for token in tokens:
            self.lexed_to = token.end
            if pending is not None and pending.type == token.type == "NUMBER" and (
                pending.end == token.index
            ):
                pending.value += token.value
                pending.end = token.end
                continue
            if pending is not None:
                yield pending
            pending = token
        if pending is not None:
            yield pending

    def unexpected(self) -> str:
        if self.finished or self.last is None:
            return "it ends too early (an unclosed '(' or '[', or a missing value?)"
        token = self.last
        return f"unexpected {self.text[token.index:token.end]!r} at character {token.index + 1}"

    def illegal_character(self) -> str:
        rest = self.text[self.lexed_to :]
        position = self.lexed_to + len(rest) - len(rest.lstrip(" \t"))
        character = self.text[position : position + 1]
        if character == '"':
            return f"the string starting at character {position + 1} is never closed"
        return f"unexpected character {character!r} at character {position + 1}"


#: A quoted string, a bare word, or any other single character.
_WORDS = re.compile(rf'{QUOTED}|[^\s()\[\]"]+|\S')
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_OPERATOR_WORDS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


def _quote_bare_values(text: str) -> str:
    """``externalId eq jyoung`` -> ``externalId eq "jyoung"`` (Entra's legacy docs)."""
    pieces, copied, previous = [], 0, ""
    for match in _WORDS.finditer(text):
        word = match.group()
        if previous.lower() in _OPERATOR_WORDS and _is_bare_value(word):
            pieces += [text[copied : match.start()], f'"{word}"']
            copied = match.end()
        previous = word
    return "".join(pieces) + text[copied:]


def _is_bare_value(word: str) -> bool:
    return (
        word[0] not in '"()[]'
        and word not in ("true", "false", "null")
        and not _JSON_NUMBER.fullmatch(word)
    )


def _regroup(node: Any) -> Any:
    """Rebuild runs of and/or so that "and" binds tighter than "or"; the library parses them
    with equal precedence, left to right (``a or b and c`` as ``(a or b) and c``)."""
    match node:
        case ast.Filter() if _is_unparenthesized_chain(node):
            return _rebuild(node.expr)
        case ast.Filter():
            return ast.Filter(_regroup(node.expr), node.negated, node.namespace)
        case ast.AttrExpr(attr_path=ast.AttrPath(attr_name=ast.Filter() as value_path) as path):
            regrouped = ast.AttrPath(_regroup(value_path), path.sub_attr, path.uri)
            return ast.AttrExpr(node.value, regrouped, node.comp_value)
    return node


def _rebuild(chain: ast.LogExpr) -> ast.Filter:
    terms: list[Any] = []
    operators: list[str] = []
    pending: list[Any] = [chain]
    while pending:  # in order, without recursion: chains can be 200 terms long
        item = pending.pop()
        if isinstance(item, str):
            operators.append(item)
        elif isinstance(item, ast.LogExpr):
            pending += [item.expr2, item.op.lower(), item.expr1]
        elif _is_unparenthesized_chain(item):
            pending.append(item.expr)
        else:
            terms.append(_regroup(item))
    groups = [[terms[0]]]
    for op, term in zip(operators, terms[1:], strict=True):
        if op == "or":
            groups.append([term])
        else:
            groups[-1].append(term)
    return _joined_by("or", [_joined_by("and", group) for group in groups])


def _is_unparenthesized_chain(node: Any) -> bool:
    """The parser wraps a bare ``a or b`` in one Filter, a parenthesized one in two."""
    return (
        isinstance(node, ast.Filter)
        and isinstance(node.expr, ast.LogExpr)
        and not node.negated
        and node.namespace is None
    )


def _joined_by(op: str, terms: list[Any]) -> Any:
    joined = terms[0]
    for term in terms[1:]:
        joined = ast.Filter(ast.LogExpr(op, joined, term), False, None)
    return joined


def operands(chain: ast.LogExpr) -> list[Any]:
    """The operands of a run of one operator, flattened so that long chains do not recurse."""
    op = chain.op.lower()
    found, pending = [], [chain.expr2, chain.expr1]
    while pending:
        node = inner = pending.pop()
        while isinstance(inner, ast.Filter) and not inner.negated and inner.namespace is None:
            inner = inner.expr
        if isinstance(inner, ast.LogExpr) and inner.op.lower() == op:
            pending += [inner.expr2, inner.expr1]
        else:
            found.append(node)
    return found

