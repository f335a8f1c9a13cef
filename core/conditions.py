"""Rule conditions: validated dicts compiled once into predicates over a per-recipient ``Ctx``. Stdlib only.

A condition is a mapping. ``all`` / ``any`` take a list, ``not`` one condition; any other key is a leaf
(``LEAVES``, docs/rules.md). Several keys in one mapping mean all of them. Compile errors raise ``RuleError``
with the path of the offending field, so the YAML loader can point at its line.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from core.facts import Ctx, domain_of, lookup
from core.validate import Path, RuleError

Pred = Callable[[Ctx], bool]


# ---- value matchers (compiled leaf arguments) ----

def _strings(v: Any, path: Path) -> frozenset[str]:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise RuleError(path, "expected a non-empty string or a list of them")
    return frozenset(x.lower() for x in items)


def _regex(v: Any, path: Path) -> re.Pattern[str]:
    if not isinstance(v, str):
        raise RuleError(path, "expected a regular expression string")
    try:
        return re.compile(v)
    except re.error as exc:
        raise RuleError(path, f"bad regular expression: {exc}") from None


def _range(v: Any, path: Path) -> Callable[[Any], bool]:
    num = (int, float)
    if isinstance(v, num) and not isinstance(v, bool):
        return lambda x: x == v
    if isinstance(v, dict) and v and set(v) <= {"min", "max"} and all(
        isinstance(x, num) and not isinstance(x, bool) for x in v.values()
    ):
        lo, hi = v.get("min", float("-inf")), v.get("max", float("inf"))
        return lambda x: isinstance(x, num) and not isinstance(x, bool) and lo <= x <= hi
    raise RuleError(path, "expected a number or {min: N, max: N}")


def _bool(v: Any, path: Path) -> bool:
    if not isinstance(v, bool):
        raise RuleError(path, "expected true or false")
    return v


def _value(v: Any, path: Path) -> Callable[[Any], bool]:
    """Generic enrichment test: {equals|in|regex|min/max|exists}."""
    if not isinstance(v, dict) or len(set(v) - {"path"}) != 1 or not isinstance(v.get("path"), str):
        raise RuleError(path, "expected {path: a.b.c, and one of equals|in|regex|min|max|exists}")
    op = next(k for k in v if k != "path")
    arg = v[op]
    if op == "equals":
        return lambda x: x == arg
    if op == "in":
        if not isinstance(arg, list):
            raise RuleError((*path, "in"), "expected a list")
        return lambda x: x in arg
    if op == "regex":
        rx = _regex(arg, (*path, "regex"))
        return lambda x: isinstance(x, str) and rx.search(x) is not None
    if op == "exists":
        want = _bool(arg, (*path, "exists"))
        return lambda x: (x is not None) == want
    if op in ("min", "max"):
        return _range({k: v[k] for k in v if k in ("min", "max")}, path)
    raise RuleError((*path, op), "unknown test (use equals, in, regex, min, max or exists)")


def _re_capture(rx: re.Pattern[str], attr: str) -> Pred:
    def pred(c: Ctx) -> bool:
        m = rx.search(getattr(c, attr) if attr != "sender" else c.facts.sender)
        if m is None:
            return False
        c.captures.update({k: v for k, v in m.groupdict().items() if v is not None})
        return True

    return pred


def _header(v: Any, path: Path) -> Pred:
    if not isinstance(v, dict) or not isinstance(v.get("name"), str) or len(v) != 2:
        raise RuleError(path, "expected {name: Header-Name, and one of equals|regex|exists}")
    name = v["name"].lower()
    op = next(k for k in v if k != "name")
    if op == "exists":
        want = _bool(v[op], (*path, op))
        return lambda c: (name in c.facts.headers) == want
    if op == "equals":
        return lambda c: v["equals"] in c.facts.headers.get(name, ())
    if op == "regex":
        rx = _regex(v[op], (*path, op))
        return lambda c: any(rx.search(x) for x in c.facts.headers.get(name, ()))
    raise RuleError((*path, op), "unknown test (use equals, regex or exists)")


def _globs(v: Any, path: Path) -> Callable[[list[str]], bool]:
    pats = [re.compile(fnmatch.translate(p)) for p in _strings(v, path)]
    return lambda xs: any(p.match(x) for p in pats for x in xs)


def _search(v: Any, path: Path) -> Callable[[Any], bool]:
    rx = _regex(v, path)
    return lambda x: rx.search(x) is not None


def _in(v: Any, path: Path) -> Callable[[Any], bool]:
    s = _strings(v, path)
    return lambda x: isinstance(x, str) and x.lower() in s


def _flag(v: Any, path: Path) -> Callable[[Any], bool]:
    want = _bool(v, path)
    return lambda x: bool(x) == want


def _present(v: Any, path: Path) -> Callable[[Any], bool]:
    want = _bool(v, path)
    return lambda x: (x is not None) == want


def _tag(v: Any, path: Path) -> Callable[[Any], bool]:
    return _flag(v, path) if isinstance(v, bool) else _in(v, path)


Leaf = Callable[[Any, Path], Pred]


def _on(get: Callable[[Ctx], Any], make: Callable[[Any, Path], Callable[[Any], bool]]) -> Leaf:
    def leaf(v: Any, path: Path) -> Pred:
        test = make(v, path)
        return lambda c: test(get(c))

    return leaf


def _enr(dotted_path: str) -> Callable[[Ctx], Any]:
    return lambda c: lookup(c.facts.enrich, dotted_path)


def _enrichment(v: Any, path: Path) -> Pred:
    test = _value(v, path)
    return _on(_enr(v["path"]), lambda *_: test)(v, path)


# leaf name -> compiler(value, path) -> predicate. Enrichment paths are documented in docs/rules.md.
LEAVES: dict[str, Leaf] = {
    "recipient": _on(lambda c: c.recipient, _in),
    "recipient_domain": _on(lambda c: c.domain, _in),
    "recipient_regex": lambda v, p: _re_capture(_regex(v, p), "recipient"),
    "tag": _on(lambda c: c.tag, _tag),
    "sender": _on(lambda c: c.facts.sender, _in),
    "sender_domain": _on(lambda c: domain_of(c.facts.sender), _in),
    "sender_regex": lambda v, p: _re_capture(_regex(v, p), "sender"),
    "header": _header,
    "subject": _on(lambda c: c.facts.subject, _search),
    "attachment_type": _on(lambda c: c.facts.att_types, _globs),
    "attachment_name": _on(lambda c: c.facts.att_names, _globs),
    "attachment_count": _on(lambda c: c.facts.att_count, _range),
    "attachment_size": _on(lambda c: c.facts.att_size, _range),
    "malware": _on(_enr("malware.result.verdict"), _in),
    "language": _on(_enr("language.result.language"), _in),
    "sentiment": _on(_enr("sentiment.result.compound"), _range),
    "invoice": _on(_enr("ocr.result.invoice"), _present),
    "autoreply": _on(_enr("autoreply.result.autoreply"), _flag),
    "bounce": _on(_enr("bounce.result.bounce"), _flag),
    "enrichment": _enrichment,
}


def compile_condition(cond: Any, path: Path) -> Pred:
    """Compile one condition mapping. Raises RuleError naming the bad field."""
    if not isinstance(cond, dict) or not cond:
        raise RuleError(path, "expected a condition mapping (all/any/not or a leaf such as recipient_domain)")
    preds = [_one(key, value, (*path, key)) for key, value in cond.items()]
    if len(preds) == 1:
        return preds[0]
    return lambda c: all(p(c) for p in preds)


def _one(key: Any, value: Any, path: Path) -> Pred:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise RuleError(path, f"{key} takes a non-empty list of conditions")
        subs = tuple(compile_condition(v, (*path, i)) for i, v in enumerate(value))
        if key == "all":
            return lambda c: all(p(c) for p in subs)
        return lambda c: any(p(c) for p in subs)
    if key == "not":
        sub = compile_condition(value, path)
        return lambda c: not sub(c)
    if key not in LEAVES:
        raise RuleError(path, f"unknown condition {key!r}; known: all, any, not, {', '.join(LEAVES)}")
    return LEAVES[key](value, path)
