"""Reverse and forward paths of MAIL FROM / RCPT TO (RFC 5321 4.1.2): the mailbox and the ESMTP parameters.
Lenient where real clients are sloppy (a space after the colon, a bare address), strict where it matters
(no control characters, no unbalanced brackets). Pure functions."""

from __future__ import annotations


def path_arg(arg: str, keyword: str) -> tuple[str | None, list[tuple[str, str]]] | None:
    """``FROM:<path> params`` -> (mailbox or "" for <>, None if malformed; [(NAME, value)]); None: no keyword."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword) :].lstrip()  # "FROM: <a@b>" is sloppy but common
    if rest.startswith("<"):
        close = _closing_bracket(rest)
        if close < 0:
            return (None, [])
        path, tail = rest[1:close], rest[close + 1 :]
        if tail and not tail.startswith(" "):
            return (None, [])
    else:  # a bare address, as some clients send it
        path, _, tail = rest.partition(" ")
        if not path:
            return (None, [])
    params: list[tuple[str, str]] = []
    for word in tail.split():
        name, _, value = word.partition("=")
        params.append((name.upper(), value))
    return (mailbox(path), params)


def _closing_bracket(text: str) -> int:
    if '"' not in text:
        return text.find(">")
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"' and text[i - 1] != "\\":
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    return -1


def mailbox(path: str) -> str | None:
    """The mailbox of a reverse/forward path: "" for <>, None if malformed. Source routes are dropped."""
    if not path:
        return ""
    if path.startswith("@"):  # RFC 5321 4.1.2 A-d-l: "@relay1,@relay2:user@domain", ignored (C.1)
        _, colon, path = path.partition(":")
        if not colon:
            return None
    local, at, domain = path.rpartition("@")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in path):  # not even in a quoted local part (qtextSMTP)
        return None
    if not at or not local or not domain or any(ch.isspace() or ch in "<>" for ch in domain):
        return None
    if not local.startswith('"') and any(ch.isspace() or ch in '<>(),;:"' for ch in local):
        return None
    return path
