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

from mailpipe.core.routing.facts import Ctx
from mailpipe.core.routing.validate import Path, RuleError, bool_arg, range_arg, regex_arg, strings_arg

Pred = Callable[[Ctx], bool]


def _value(v: Any, path: Path, key: str = "path") -> Callable[[Any], bool]:
    """A test on one value: ``{<key>: ..., and one of equals|in|regex|min/max|exists}``."""
    ops = set(v) - {key} if isinstance(v, dict) else set()
    if not (isinstance(v, dict) and isinstance(v.get(key), str) and (len(ops) == 1 or ops == {"min", "max"})):
        raise RuleError(path, f"expected {{{key}: ..., and one of equals|in|regex|min|max|exists}}")
    op = next(k for k in v if k != key)
    arg = v[op]
    if op == "equals":
        return lambda x: x == arg
    if op == "in":
        if not isinstance(arg, list):
            raise RuleError((*path, "in"), "expected a list")
        return lambda x: x in arg
    if op == "regex":
        rx = regex_arg(arg, (*path, "regex"))
        return lambda x: isinstance(x, str) and rx.search(x) is not None
    if op == "exists":
        want = bool_arg(arg, (*path, "exists"))
        return lambda x: (x is not None) == want
    if op in ("min", "max"):
        return range_arg({k: v[k] for k in v if k in ("min", "max")}, path)
    raise RuleError((*path, op), "unknown test (use equals, in, regex, min, max or exists)")


def _re_capture(rx: re.Pattern[str], get: Callable[[Ctx], str]) -> Pred:
    def pred(c: Ctx) -> bool:
        m = rx.search(get(c))
        if m is None:
            return False
        c.captures.update({k: v for k, v in m.groupdict().items() if v is not None})
        return True

    return pred


def _header(v: Any, path: Path) -> Pred:
    test = _value(v, path, key="name")  # exists tests the list of values; the others each value
    name = v["name"].lower()
    if "exists" in v:
        return lambda c: test(c.facts.headers.get(name))
    return lambda c: any(test(x) for x in c.facts.headers.get(name, ()))


def _globs(v: Any, path: Path) -> Callable[[list[str]], bool]:
    pats = [re.compile(fnmatch.translate(p)) for p in strings_arg(v, path)]
    return lambda xs: any(p.match(x) for p in pats for x in xs)


def _search(v: Any, path: Path) -> Callable[[Any], bool]:
    rx = regex_arg(v, path)
    return lambda x: rx.search(x) is not None


def _in(v: Any, path: Path) -> Callable[[Any], bool]:
    s = strings_arg(v, path)
    return lambda x: isinstance(x, str) and x.lower() in s


def _flag(v: Any, path: Path) -> Callable[[Any], bool]:
    want = bool_arg(v, path)
    return lambda x: bool(x) == want


def _present(v: Any, path: Path) -> Callable[[Any], bool]:
    want = bool_arg(v, path)
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
    return lambda c: c.facts.value(dotted_path)


def _enrichment(v: Any, path: Path) -> Pred:
    test = _value(v, path)
    return _on(_enr(v["path"]), lambda *_: test)(v, path)


# leaf name -> compiler(value, path) -> predicate. Enrichment paths are documented in docs/rules.md.
LEAVES: dict[str, Leaf] = {
    "recipient": _on(lambda c: c.recipient, _in),
    "recipient_domain": _on(lambda c: c.domain, _in),
    "recipient_regex": lambda v, p: _re_capture(regex_arg(v, p), lambda c: c.recipient),
    "tag": _on(lambda c: c.tag, _tag),
    "sender": _on(lambda c: c.facts.sender, _in),
    "sender_domain": _on(lambda c: c.facts.sender_domain, _in),
    "sender_regex": lambda v, p: _re_capture(regex_arg(v, p), lambda c: c.facts.sender),
    "header": _header,
    "subject": _on(lambda c: c.facts.subject, _search),
    "attachment_type": _on(lambda c: c.facts.att_types, _globs),
    "attachment_name": _on(lambda c: c.facts.att_names, _globs),
    "attachment_count": _on(lambda c: c.facts.att_count, range_arg),
    "attachment_size": _on(lambda c: c.facts.att_size, range_arg),
    "malware": _on(_enr("malware.result.verdict"), _in),
    "language": _on(_enr("language.result.language"), _in),
    "sentiment": _on(_enr("sentiment.result.compound"), range_arg),
    "invoice": _on(_enr("ocr.result.invoice"), _present),
    "autoreply": _on(lambda c: c.facts.autoreply(), _flag),
    "bounce": _on(lambda c: c.facts.bounce(), _flag),
    "enrichment": _enrichment,
}


def compile_condition(cond: Any, path: Path) -> Pred:
    """Compile one condition mapping. Raises RuleError naming the bad field."""
    if not isinstance(cond, dict) or not cond:
        raise RuleError(path, "expected a condition mapping (all/any/not or a leaf such as recipient_domain)")
    return _join(tuple(_one(key, value, (*path, key)) for key, value in cond.items()), every=True)


def _join(preds: tuple[Pred, ...], *, every: bool) -> Pred:
    # Specialised closures: rule evaluation is the hot loop (bench/rules.py), generators cost ~3x.
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return (lambda c: a(c) and b(c)) if every else (lambda c: a(c) or b(c))

    def join_all(c: Ctx) -> bool:
        for p in preds:  # noqa: SIM110 (see above)
            if not p(c):
                return False
        return True

    def join_any(c: Ctx) -> bool:
        for p in preds:  # noqa: SIM110
            if p(c):
                return True
        return False

    return join_all if every else join_any


def _one(key: Any, value: Any, path: Path) -> Pred:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise RuleError(path, f"{key} takes a non-empty list of conditions")
        subs = tuple(compile_condition(v, (*path, i)) for i, v in enumerate(value))
        return _join(subs, every=key == "all")
    if key == "not":
        sub = compile_condition(value, path)
        return lambda c: not sub(c)
    if key not in LEAVES:
        raise RuleError(path, f"unknown condition {key!r}; known: all, any, not, {', '.join(LEAVES)}")
    return LEAVES[key](value, path)
