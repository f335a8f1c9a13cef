"""``mailpipe.core.edge.session.Session`` driven directly, without sockets: bytes in, replies and actions out."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.core.edge.actions import Close, Deliver, StartTLS, Step
from mailpipe.core.edge.session import COMMAND_LIMIT, HELP, MAX_ERRORS, Session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from mailpipe.core.edge.actions import Action

HOST = "mx.test"
EHLO_LINES = [HOST, "SIZE 1000", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"]
# RFC 5321 4.2: Reply-code SP/"-" textstring CRLF, textstring = 1*(HT / %d32-126)
REPLY_LINE = re.compile(rb"([2-5]\d\d)([ -])[\t\x20-\x7e]*\r\n")
MSG = b"From: a@sender.org\r\nSubject: t\r\n\r\n..leading dot\r\n..\r\nx.\r\n"  # wire form, dot-stuffed
UNSTUFFED = b"From: a@sender.org\r\nSubject: t\r\n\r\n.leading dot\r\n.\r\nx.\r\n"


def accept_all(address: str, count: int) -> str | None:
    return None


def make(
    *,
    tls: bool = False,
    max_size: int = 1000,
    max_line: int = 100,
    check_rcpt: Callable[[str, int], str | None] = accept_all,
) -> Session:
    return Session(hostname=HOST, max_size=max_size, max_line=max_line, check_rcpt=check_rcpt, tls_available=tls)


def send(session: Session, data: bytes | str) -> Step:
    return session.receive(data.encode() if isinstance(data, str) else data)


def lines(out: bytes) -> list[str]:
    assert out.endswith(b"\r\n") or not out
    return out.decode().split("\r\n")[:-1]


def reply(session: Session, command: str) -> str:
    """The one reply line to ``command`` (which must not produce an action)."""
    step = send(session, command + "\r\n")
    assert step.action is None
    [line] = lines(step.out)
    return line


def ready(**kw: Any) -> Session:
    session = make(**kw)
    assert send(session, "EHLO client.test\r\n").out.endswith(b"250 HELP\r\n")
    return session


def opened(**kw: Any) -> Session:
    """A session inside a transaction with one accepted recipient."""
    session = ready(**kw)
    assert reply(session, "MAIL FROM:<a@sender.org>") == "250 2.1.0 OK"
    assert reply(session, "RCPT TO:<b@example.com>") == "250 2.1.5 OK"
    return session


def deliver(session: Session, body: bytes = MSG) -> Deliver:
    assert reply(session, "DATA") == "354 End data with <CR><LF>.<CR><LF>"
    step = send(session, body + b".\r\n")
    assert step.out == b""
    assert isinstance(step.action, Deliver)
    return step.action


def assert_replies_well_formed(out: bytes) -> None:
    """Every line is a reply line; a "NNN-" line is continued by a line with the same code."""
    pos, continued = 0, None
    while pos < len(out):
        match = REPLY_LINE.match(out, pos)
        assert match is not None, out[pos : pos + 80]
        assert continued in (None, match[1]), out
        continued = match[1] if match[2] == b"-" else None
        pos = match.end()
    assert continued is None, out


# -- greeting, EHLO, HELO ------------------------------------------------------------------------------


def test_greeting() -> None:
    assert make().greeting() == b"220 mx.test mailpipe ESMTP\r\n"


@pytest.mark.parametrize("tls", [False, True])
def test_ehlo_lists_extensions_starttls_only_when_available(tls: bool) -> None:
    step = send(make(tls=tls), "EHLO client.test\r\n")
    expected = [*EHLO_LINES, *(["STARTTLS"] if tls else []), "HELP"]
    assert step.action is None
    assert lines(step.out) == [f"250-{line}" for line in expected[:-1]] + ["250 HELP"]


def test_ehlo_and_helo_need_a_hostname() -> None:
    session = make()
    assert reply(session, "EHLO") == "501 5.5.4 Syntax: EHLO hostname"
    assert reply(session, "HELO") == "501 5.5.4 Syntax: HELO hostname"
    assert reply(session, "MAIL FROM:<a@b.org>").startswith("503 ")


def test_helo_is_one_line_and_opens_the_session() -> None:
    session = make()
    assert reply(session, "HELO client.test") == "250 mx.test"
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"
    assert reply(session, "RCPT TO:<r@example.com>") == "250 2.1.5 OK"
    assert deliver(session).helo == "client.test"


def test_verbs_are_case_insensitive() -> None:
    session = make()
    assert send(session, "ehlo client.test\r\n").out.endswith(b"250 HELP\r\n")
    assert reply(session, "mail from:<a@b.org>") == "250 2.1.0 OK"
    assert reply(session, "Rcpt To:<r@example.com>") == "250 2.1.5 OK"


def test_ehlo_again_drops_the_transaction() -> None:
    session = opened()
    send(session, "EHLO other.test\r\n")
    assert reply(session, "RCPT TO:<r@example.com>") == "503 5.5.1 Error: need MAIL command"
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"


# -- sequencing and simple commands ------------------------------------------------------------------


def test_mail_before_helo() -> None:
    assert reply(make(), "MAIL FROM:<a@b.org>") == "503 5.5.1 Error: send HELO first"


def test_nested_mail() -> None:
    session = ready()
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"
    assert reply(session, "MAIL FROM:<c@d.org>") == "503 5.5.1 Error: nested MAIL command"


def test_rcpt_before_mail() -> None:
    assert reply(ready(), "RCPT TO:<r@example.com>") == "503 5.5.1 Error: need MAIL command"


def test_data_before_mail_and_without_rcpt() -> None:
    session = ready()
    assert reply(session, "DATA") == "503 5.5.1 Error: need MAIL command"
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"
    assert reply(session, "DATA") == "503 5.5.1 Error: need RCPT command"


def test_data_with_an_argument() -> None:
    session = opened()
    assert reply(session, "DATA now") == "501 5.5.4 Syntax: DATA"
    assert isinstance(deliver(session), Deliver)  # the transaction survived the syntax error


def test_rset_clears_the_transaction() -> None:
    session = opened()
    assert reply(session, "RSET") == "250 2.0.0 OK"
    assert reply(session, "DATA") == "503 5.5.1 Error: need MAIL command"
    assert reply(session, "RCPT TO:<r@example.com>") == "503 5.5.1 Error: need MAIL command"
    assert reply(session, "MAIL FROM:<new@b.org>") == "250 2.1.0 OK"  # not "nested"
    assert reply(session, "RCPT TO:<r@example.com>") == "250 2.1.5 OK"
    action = deliver(session)
    assert (action.mail_from, action.rcpt_to) == ("new@b.org", ("r@example.com",))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("NOOP", "250 2.0.0 OK"),
        ("NOOP anything", "250 2.0.0 OK"),
        ("VRFY someone", "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"),
        ("VRFY", "501 5.5.4 Syntax: VRFY <address>"),
        ("HELP", HELP),
        ("EXPN list", "502 5.5.1 Error: command not implemented"),
        ("AUTH PLAIN AGF1dGgAcGFzcw==", "502 5.5.1 Error: command not implemented"),
        ("BDAT 10 LAST", "502 5.5.1 Error: command not implemented"),
        ("XYZZY", "500 5.5.1 Command not recognized"),
        ("", "500 5.5.2 Error: bad syntax"),
    ],
)
def test_simple_commands(command: str, expected: str) -> None:
    assert reply(make(), command) == expected


def test_help_is_a_214() -> None:
    assert HELP.startswith("214 2.0.0 ")


def test_quit_closes_and_later_input_is_ignored() -> None:
    session = opened()
    step = send(session, "QUIT\r\nNOOP\r\n")
    assert step == Step(b"221 2.0.0 Bye\r\n", Close())
    assert send(session, "NOOP\r\n") == Step()


# -- MAIL / RCPT parameters and addresses --------------------------------------------------------------


def test_size_over_max_is_552_and_opens_no_transaction() -> None:
    session = ready()
    assert (
        reply(session, "MAIL FROM:<a@b.org> SIZE=1001") == "552 5.3.4 Message size exceeds fixed maximum message size"
    )
    assert reply(session, "RCPT TO:<r@example.com>") == "503 5.5.1 Error: need MAIL command"
    assert reply(session, "MAIL FROM:<a@b.org> SIZE=1000") == "250 2.1.0 OK"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("SIZE=10", "250 2.1.0 OK"),
        ("size=0", "250 2.1.0 OK"),
        ("SIZE=ten", "501 5.5.4 Syntax: SIZE=<number>"),
        ("SIZE=", "501 5.5.4 Syntax: SIZE=<number>"),
        ("SIZE=-1", "501 5.5.4 Syntax: SIZE=<number>"),
        ("SIZE=²", "501 5.5.4 Syntax: SIZE=<number>"),  # str.isdigit() but not an ASCII number
        ("SIZE=١٢", "501 5.5.4 Syntax: SIZE=<number>"),  # Arabic-Indic digits: RFC 1870 size-value is ASCII
        ("BODY=8BITMIME", "250 2.1.0 OK"),
        ("BODY=7BIT", "250 2.1.0 OK"),
        ("body=8bitmime", "250 2.1.0 OK"),
        ("BODY=BINARYMIME", "501 5.5.4 Error: BODY is 7BIT or 8BITMIME"),
        ("SMTPUTF8", "250 2.1.0 OK"),
        ("SMTPUTF8 BODY=8BITMIME SIZE=5", "250 2.1.0 OK"),
        ("SMTPUTF8=yes", "555 5.5.4 Error: MAIL parameter 'SMTPUTF8' not supported"),
        ("AUTH=<>", "555 5.5.4 Error: MAIL parameter 'AUTH' not supported"),
        ("XFOO", "555 5.5.4 Error: MAIL parameter 'XFOO' not supported"),
    ],
)
def test_mail_parameters(params: str, expected: str) -> None:
    session = ready()
    assert reply(session, f"MAIL FROM:<a@b.org> {params}") == expected
    opened_now = expected.startswith("250")
    assert reply(session, "RCPT TO:<r@example.com>") == (
        "250 2.1.5 OK" if opened_now else "503 5.5.1 Error: need MAIL command"
    )


def test_rcpt_parameters_are_refused() -> None:
    session = ready()
    reply(session, "MAIL FROM:<a@b.org>")
    assert (
        reply(session, "RCPT TO:<r@example.com> NOTIFY=NEVER")
        == "555 5.5.4 Error: RCPT parameter 'NOTIFY' not supported"
    )
    assert reply(session, "DATA") == "503 5.5.1 Error: need RCPT command"  # the recipient was not added


def test_echoed_parameter_names_stay_printable_ascii() -> None:
    """Client bytes echoed in a reply must not break RFC 5321's reply grammar (controls, 8-bit)."""
    session = ready()
    step = send(session, "MAIL FROM:<a@b.org> X\x00\x1bÉ=1\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<r@x.org> \x7f\r\n")
    assert_replies_well_formed(step.out)
    assert lines(step.out)[0].startswith("555 ")
    assert lines(step.out)[2].startswith("555 ")


@pytest.mark.parametrize(
    ("command", "mail_from"),
    [
        ("MAIL FROM:<a@b.org>", "a@b.org"),
        ("MAIL FROM:<>", ""),  # the null sender of bounces
        ("MAIL FROM:<> SIZE=10", ""),
        ("MAIL FROM: <a@b.org>", "a@b.org"),  # sloppy space after the colon
        ("MAIL FROM:a@b.org", "a@b.org"),  # no brackets at all
        ("MAIL FROM:a@b.org SIZE=10", "a@b.org"),
        ("mail from:<A@B.org>", "A@B.org"),
        ("MAIL FROM:<@relay.org:u@d.org>", "u@d.org"),  # RFC 5321 source route, dropped
        ("MAIL FROM:<@r1.org,@r2.org:u@d.org>", "u@d.org"),
        ('MAIL FROM:<"odd>local"@d.org>', '"odd>local"@d.org'),  # '>' inside the quotes does not close
        ('MAIL FROM:<"a b"@d.org> SIZE=10', '"a b"@d.org'),
        ("MAIL FROM:<jörg@bücher.de> SMTPUTF8", "jörg@bücher.de"),
    ],
)
def test_sender_forms(command: str, mail_from: str) -> None:
    session = ready()
    assert reply(session, command) == "250 2.1.0 OK"
    assert reply(session, "RCPT TO:<r@example.com>") == "250 2.1.5 OK"
    action = deliver(session)
    assert action == Deliver(mail_from, ("r@example.com",), UNSTUFFED, "client.test")


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("MAIL", "501"),
        ("MAIL TO:<a@b.org>", "501"),
        ("MAIL FROM<a@b.org>", "501"),
        ("MAIL FROM:", "553"),
        ("MAIL FROM:<ab.org>", "553"),  # no @
        ("MAIL FROM:<a@>", "553"),
        ("MAIL FROM:<@b.org>", "553"),
        ("MAIL FROM:<a b@c.org>", "553"),  # space in an unquoted local part
        ("MAIL FROM:<a@b .org>", "553"),
        ("MAIL FROM:<a@b.org", "553"),  # missing '>'
        ('MAIL FROM:<"a>b@c.org>', "553"),  # unterminated quote: the '>' is quoted
        ("MAIL FROM:<a@b.org>SIZE=10", "553"),  # no space before the parameter
        ("MAIL FROM:<@relay.org>", "553"),  # source route without a mailbox
        ("MAIL FROM:<a(b)@c.org>", "553"),
        ('MAIL FROM:<"a\x00b"@c.org>', "553"),  # RFC 5321 qtextSMTP: no controls, even quoted
        ('MAIL FROM:<"a\rb"@c.org>', "553"),
        ('MAIL FROM:<"a\x7fb"@c.org>', "553"),
        ("MAIL FROM:<a\x7fb@c.org>", "553"),
    ],
)
def test_malformed_senders(command: str, code: str) -> None:
    session = ready()
    assert reply(session, command)[:4] == code + " "
    assert reply(session, "RCPT TO:<r@example.com>").startswith("503 ")  # no transaction was opened


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("RCPT TO:<>", "553"),
        ("RCPT TO:<nobody>", "553"),
        ("RCPT TO:<a b@example.com>", "553"),
        ("RCPT TO:<r@example.com", "553"),
        ("RCPT FROM:<r@example.com>", "501"),
        ("RCPT", "501"),
    ],
)
def test_malformed_recipients(command: str, code: str) -> None:
    session = ready()
    reply(session, "MAIL FROM:<a@b.org>")
    assert reply(session, command)[:4] == code + " "
    assert reply(session, "DATA") == "503 5.5.1 Error: need RCPT command"


def test_check_rcpt_refusal_and_count() -> None:
    calls: list[tuple[str, int]] = []

    def check(address: str, count: int) -> str | None:
        calls.append((address, count))
        if address.endswith("@nowhere.test"):
            return "550 5.1.1 No such user"
        return "452 4.5.3 Too many recipients" if count >= 2 else None

    session = ready(check_rcpt=check)
    reply(session, "MAIL FROM:<a@b.org>")
    got = [reply(session, f"RCPT TO:<{r}>") for r in ("one@ex.test", "x@nowhere.test", "two@ex.test", "three@ex.test")]
    assert got == ["250 2.1.5 OK", "550 5.1.1 No such user", "250 2.1.5 OK", "452 4.5.3 Too many recipients"]
    assert calls == [("one@ex.test", 0), ("x@nowhere.test", 1), ("two@ex.test", 1), ("three@ex.test", 2)]
    assert deliver(session).rcpt_to == ("one@ex.test", "two@ex.test")


def test_all_recipients_refused_means_no_data() -> None:
    session = ready(check_rcpt=lambda address, count: "550 5.1.1 No such user")
    reply(session, "MAIL FROM:<a@b.org>")
    assert reply(session, "RCPT TO:<r@example.com>") == "550 5.1.1 No such user"
    assert reply(session, "DATA") == "503 5.5.1 Error: need RCPT command"


# -- DATA -----------------------------------------------------------------------------------------------


def test_data_in_one_chunk_or_byte_by_byte() -> None:
    whole = deliver(opened())
    assert whole == Deliver("a@sender.org", ("b@example.com",), UNSTUFFED, "client.test")
    session = opened()
    assert reply(session, "DATA").startswith("354 ")
    steps = [send(session, bytes([byte])) for byte in MSG + b".\r\n"]
    assert all(step == Step() for step in steps[:-1])
    assert steps[-1] == Step(b"", whole)


@pytest.mark.parametrize(
    ("wire", "raw"),
    [
        (b".\r\n", b""),  # empty message: the end marker is the first line
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...x\r\n.\r\n", b"..x\r\n"),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n"),
        (b"no final newline.\r\n", None),  # not an end marker: DATA goes on
    ],
)
def test_dot_unstuffing_and_end_marker(wire: bytes, raw: bytes | None) -> None:
    session = opened()
    reply(session, "DATA")
    step = send(session, wire)
    if raw is None:
        assert step == Step()
        step = send(session, b"\r\n.\r\n")
    assert isinstance(step.action, Deliver)
    assert step.action.raw == (raw if raw is not None else wire + b"\r\n")


def test_input_while_blocked_is_buffered_until_resume() -> None:
    session = opened()
    reply(session, "DATA")
    step = send(session, MSG + b".\r\nNOOP\r\n")
    assert isinstance(step.action, Deliver) and step.out == b""
    assert session.blocked
    assert send(session, "MAIL FROM:<c@d.org>\r\n") == Step()
    assert send(session, "RCPT TO:<r@example.com>\r\nQUIT\r\n") == Step()
    step = session.resume("250 2.0.0 Ok: queued as abc")
    assert not session.blocked
    assert lines(step.out) == [
        "250 2.0.0 Ok: queued as abc",
        "250 2.0.0 OK",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "221 2.0.0 Bye",
    ]
    assert step.action == Close()


def test_a_whole_pipelined_session_in_one_receive() -> None:
    session = make()
    wire = (
        b"EHLO client.test\r\nMAIL FROM:<a@b.org>\r\nRCPT TO:<r1@example.com>\r\nDATA\r\n"
        + MSG
        + b".\r\nMAIL FROM:<>\r\nRCPT TO:<r2@example.com>\r\nRCPT TO:<r3@example.com>\r\n"
        + b"DATA\r\nsecond\r\n.\r\nQUIT\r\n"
    )
    step = send(session, wire)
    ehlo = [f"250-{line}" for line in EHLO_LINES] + ["250 HELP"]
    assert lines(step.out) == [*ehlo, "250 2.1.0 OK", "250 2.1.5 OK", "354 End data with <CR><LF>.<CR><LF>"]
    assert step.action == Deliver("a@b.org", ("r1@example.com",), UNSTUFFED, "client.test")
    step = session.resume("250 2.0.0 Ok: queued as one")
    assert lines(step.out) == [
        "250 2.0.0 Ok: queued as one",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
    ]
    assert step.action == Deliver("", ("r2@example.com", "r3@example.com"), b"second\r\n", "client.test")
    step = session.resume("451 4.3.0 Try again later")
    assert step == Step(b"451 4.3.0 Try again later\r\n221 2.0.0 Bye\r\n", Close())
    assert send(session, "NOOP\r\n") == Step()


SMUGGLED = b"MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n"


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"])
def test_bare_newline_end_markers_never_end_data(fake_end: bytes) -> None:
    session = opened()
    reply(session, "DATA")
    step = send(session, b"Subject: hi\r\n\r\nbody" + fake_end + SMUGGLED + b".\r\n")
    # one DATA, refused as a whole after its real end; nothing of the smuggled transaction ran
    assert step == Step(b"554 5.5.2 Message refused: bare CR or LF in data (RFC 5321 2.3.8)\r\n")
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"


@pytest.mark.parametrize("body", [b"one\ntwo\r\n", b"one\rtwo\r\n", b"bare lf\n\r\n", b"bare cr\r\r\n"])
def test_bare_cr_or_lf_anywhere_is_refused(body: bytes) -> None:
    session = opened()
    reply(session, "DATA")
    step = send(session, body + b".\r\nNOOP\r\n")
    assert lines(step.out) == ["554 5.5.2 Message refused: bare CR or LF in data (RFC 5321 2.3.8)", "250 2.0.0 OK"]
    assert step.action is None


@pytest.mark.parametrize("chunk", [50, 4096])
def test_too_big_is_552_and_the_session_goes_on(chunk: int) -> None:
    session = opened(max_size=1000)
    reply(session, "DATA")
    wire = b"x" * 70 + b"\r\n"
    wire = wire * 40 + b".\r\n"  # 2880 bytes > 1000
    out = b"".join(send(session, wire[i : i + chunk]).out for i in range(0, len(wire), chunk))
    assert out == b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"
    reply(session, "RCPT TO:<r@example.com>")
    assert deliver(session).raw == UNSTUFFED


def test_message_of_exactly_max_size_is_accepted() -> None:
    body = b"y" * 98 + b"\r\n"
    session = opened(max_size=100)
    assert deliver(session, body).raw == body
    session = opened(max_size=99)
    reply(session, "DATA")
    assert send(session, body + b".\r\n").out.startswith(b"552 ")


def test_max_size_message_fed_byte_by_byte_is_accepted() -> None:
    body = b"y" * 98 + b"\r\n"
    session = opened(max_size=100)
    reply(session, "DATA")
    steps = [send(session, bytes([byte])) for byte in body + b".\r\n"]
    assert steps[-1] == Step(b"", Deliver("a@sender.org", ("b@example.com",), body, "client.test"))


def test_data_line_longer_than_max_line_is_554() -> None:
    session = opened(max_line=50)
    reply(session, "DATA")
    assert send(session, b"y" * 50 + b"\r\n.\r\n").action is not None  # exactly max_line is fine
    session.resume("250 2.0.0 OK")
    reply(session, "MAIL FROM:<a@b.org>")
    reply(session, "RCPT TO:<r@example.com>")
    reply(session, "DATA")
    step = send(session, b"short\r\n" + b"y" * 51 + b"\r\n.\r\nNOOP\r\n")
    assert lines(step.out) == ["554 5.5.2 Message refused: line too long", "250 2.0.0 OK"]


# -- command line limits, bad bytes, error budget -----------------------------------------------------


def test_overlong_command_line_in_one_receive() -> None:
    session = make()
    step = send(session, b"NOOP " + b"x" * COMMAND_LIMIT + b"\r\nNOOP\r\n")
    assert step == Step(b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n")


def test_command_line_just_under_the_limit_is_fine() -> None:
    line = b"NOOP " + b"x" * (COMMAND_LIMIT - 7) + b"\r\n"  # COMMAND_LIMIT octets with the CRLF
    assert send(make(), line) == Step(b"250 2.0.0 OK\r\n")


def test_overlong_command_line_without_newline_yet() -> None:
    session = make()
    assert send(session, b"x" * (COMMAND_LIMIT + 1)) == Step(b"500 5.5.2 Line too long\r\n")
    assert send(session, b"y" * (3 * COMMAND_LIMIT)) == Step()  # still the same line: no second reply
    assert send(session, b"y" * 10) == Step()
    assert send(session, b"zz\r\nNOOP\r\n") == Step(b"250 2.0.0 OK\r\n")
    assert send(session, b"HELO c\r\n") == Step(b"250 mx.test\r\n")


def test_overlong_command_line_byte_by_byte() -> None:
    session = make()
    out = b"".join(send(session, b"a").out for _ in range(COMMAND_LIMIT * 2))
    assert out == b"500 5.5.2 Line too long\r\n"
    assert send(session, b"\r\nNOOP\r\n") == Step(b"250 2.0.0 OK\r\n")


def test_non_utf8_command_is_500() -> None:
    session = make()
    assert reply(session, "NOOP é") == "250 2.0.0 OK"  # UTF-8 is fine
    step = send(session, b"NOOP \xff\xfe\r\nNOOP\r\n")
    assert lines(step.out) == ["500 5.5.2 Error: command must be ASCII or UTF-8", "250 2.0.0 OK"]


def test_too_many_errors_close_the_session() -> None:
    session = make()
    for _ in range(MAX_ERRORS - 1):
        assert reply(session, "BOGUS") == "500 5.5.1 Command not recognized"
    assert reply(session, "NOOP") == "250 2.0.0 OK"  # good commands do not reset the count
    step = send(session, b"\xff\r\nNOOP\r\n")
    assert step == Step(b"421 4.7.0 Too many errors, closing connection\r\n", Close())
    assert send(session, "NOOP\r\n") == Step()
    assert send(session, "QUIT\r\n") == Step()


def test_too_many_errors_in_one_pipelined_burst() -> None:
    step = send(make(), b"BOGUS\r\n" * (MAX_ERRORS + 5) + b"NOOP\r\n")
    assert lines(step.out) == ["500 5.5.1 Command not recognized"] * (MAX_ERRORS - 1) + [
        "421 4.7.0 Too many errors, closing connection"
    ]
    assert step.action == Close()


# -- STARTTLS -------------------------------------------------------------------------------------------


def test_starttls_discards_pipelined_clear_text_and_restarts_the_session() -> None:
    session = ready(tls=True)
    step = send(session, "STARTTLS\r\nMAIL FROM:<x@y.org>\r\nRCPT TO:<r@example.com>\r\n")
    assert step == Step(b"220 2.0.0 Ready to start TLS\r\n", StartTLS())
    assert session.blocked
    assert session.tls_started() == Step()  # the injected MAIL/RCPT never ran
    assert session.tls
    assert reply(session, "MAIL FROM:<x@y.org>") == "503 5.5.1 Error: send HELO first"
    ehlo = lines(send(session, "EHLO client.test\r\n").out)
    assert ehlo == [f"250-{line}" for line in EHLO_LINES] + ["250 HELP"]  # no STARTTLS any more
    assert reply(session, "STARTTLS") == "503 5.5.1 Error: TLS already active"
    assert reply(session, "MAIL FROM:<x@y.org>") == "250 2.1.0 OK"


def test_starttls_drops_an_open_transaction() -> None:
    session = opened(tls=True)
    assert send(session, "STARTTLS\r\n").action == StartTLS()
    session.tls_started()
    send(session, "EHLO client.test\r\n")
    assert reply(session, "RCPT TO:<r@example.com>") == "503 5.5.1 Error: need MAIL command"


def test_input_after_the_starttls_action_is_kept_for_the_tls_session() -> None:
    # asyncio's SSLProtocol may hand over the first decrypted record before start_tls() returns: the
    # protocol pauses clear-text reading at StartTLS, so what arrives now came through TLS.
    session = ready(tls=True)
    assert send(session, "STARTTLS\r\n").action == StartTLS()
    assert send(session, "EHLO client.test\r\n") == Step()
    step = session.tls_started()
    assert lines(step.out)[-1] == "250 HELP" and "250-STARTTLS" not in lines(step.out)


def test_starttls_unavailable_or_with_argument() -> None:
    session = ready()
    assert reply(session, "STARTTLS") == "454 4.7.0 TLS not available"
    assert reply(session, "MAIL FROM:<a@b.org>") == "250 2.1.0 OK"  # the session goes on in clear text
    assert reply(ready(tls=True), "STARTTLS now") == "501 5.5.4 Syntax: STARTTLS"


# -- properties -----------------------------------------------------------------------------------------

# Session scripts: mostly well-formed transactions, with odd bytes in paths and parameters, bare CR/LF end
# markers, stray commands and noise in between.
VERBS = [b"EHLO c.test", b"HELO c", b"DATA", b"RSET", b"NOOP", b"QUIT", b"STARTTLS", b"VRFY x", b"HELP", b"BDAT 9", b""]
GOOD_PATHS = [
    b"<a@b.org>",
    b"<r@example.com>",
    b"<x@refused.test>",
    b"<>",
    b"u@d.org",
    b'<"q>"@d.org>',
    b"<@h:u@d.org>",
]
PATH_BITS = [b"<", b">", b"@", b":", b'"', b" ", b"a", b"d.org"]
ARGS = [b" SIZE=", b" SIZE=10", b" SIZE=99999", b" BODY=8BITMIME", b" BODY=", b" SMTPUTF8", b" X=", b" ", b"9"]
ODD = [b"\xc2\xb2", b"\x00", b"\x1b", b"\x7f", b"\xff", b"\xc3\xa9", b"\r", b"\t"]
BODY = [b"Subject: x\r\n", b"\r\n", b"text\r\n", b"..dots\r\n", b"y" * 40 + b"\r\n", b"bare\n", b"cr\r", b"\xff\r\n"]
NOISE = [b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"..", b"\r", b"\n", b"z" * (COMMAND_LIMIT + 50)]


def joined(*parts: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(*parts).map(b"".join)


def some(pieces: list[bytes], max_size: int = 4) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(pieces), max_size=max_size).map(b"".join)


GOOD_PATH = st.sampled_from(GOOD_PATHS)
PATH = st.one_of(GOOD_PATH, GOOD_PATH, some(PATH_BITS + ODD))
MAIL = joined(st.just(b"MAIL FROM:"), PATH, some(ARGS + ODD, 2), st.just(b"\r\n"))
RCPT = joined(st.just(b"RCPT TO:"), PATH, some(ARGS + ODD, 1), st.just(b"\r\n"))
END_OF_DATA = st.sampled_from([b".\r\n", b".\r\n", b"\n.\n", b"\r.\r"])
TRANSACTION = joined(
    MAIL, st.lists(RCPT, min_size=1, max_size=3).map(b"".join), st.just(b"DATA\r\n"), some(BODY, 5), END_OF_DATA
)
COMMAND = joined(st.sampled_from(VERBS), st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
STEP = st.one_of(TRANSACTION, TRANSACTION, MAIL, RCPT, COMMAND, st.sampled_from(NOISE), st.binary(max_size=8))
SESSIONS = joined(st.sampled_from([b"EHLO c.test\r\n", b"HELO c\r\n", b""]), st.lists(STEP, max_size=8).map(b"".join))


def refuse_some(address: str, count: int) -> str | None:
    if address.endswith("@refused.test"):
        return "550 5.1.1 No such user"
    return "452 4.5.3 Too many recipients" if count >= 3 else None


@st.composite
def chunked(draw: st.DrawFn, payload: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    data = draw(payload)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return data, [data[a:b] for a, b in pairwise([0, *cuts, len(data)])]


def drive(session: Session, chunks: Iterable[bytes]) -> tuple[bytes, list[Action]]:
    """Feed the chunks, carrying out every action at once; checks that nothing comes after Close."""
    out, actions, closed = [session.greeting()], [], False
    for chunk in chunks:
        step = session.receive(chunk)
        if closed:
            assert step == Step()
            continue
        out.append(step.out)
        while step.action is not None:
            actions.append(step.action)
            if isinstance(step.action, Close):
                closed = True
                break
            step = session.tls_started() if isinstance(step.action, StartTLS) else session.resume("250 2.0.0 OK")
            out.append(step.out)
    return b"".join(out), actions


def assert_sane(out: bytes, actions: list[Action]) -> None:
    assert_replies_well_formed(out)
    for action in actions:
        if isinstance(action, Deliver):
            assert action.rcpt_to
            for address in (action.mail_from, *action.rcpt_to):
                assert not any(ord(ch) < 32 or ch == "\x7f" for ch in address), address
    assert all(not isinstance(a, Close) for a in actions[:-1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_in_any_chunks_never_raise(chunks: list[bytes]) -> None:
    session = make(tls=True, max_size=200, max_line=30, check_rcpt=refuse_some)
    assert_sane(*drive(session, chunks))


@settings(max_examples=300, deadline=None)
@given(chunked(SESSIONS))
def test_command_fragments_never_raise(case: tuple[bytes, list[bytes]]) -> None:
    session = make(tls=True, max_size=200, max_line=30, check_rcpt=refuse_some)
    assert_sane(*drive(session, case[1]))


@settings(max_examples=300, deadline=None)
@given(chunked(SESSIONS))
def test_chunking_does_not_change_the_outcome(case: tuple[bytes, list[bytes]]) -> None:
    # No STARTTLS (what follows it depends on where the TLS layer starts): then replies and actions depend on
    # the bytes only, also at the size limit (a partial end marker is not counted as message bytes).
    data, chunks = case
    whole = drive(make(max_size=200, check_rcpt=refuse_some), [data])
    assert_sane(*whole)
    assert drive(make(max_size=200, check_rcpt=refuse_some), chunks) == whole
