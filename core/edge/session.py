"""An SMTP server session (RFC 5321, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, STARTTLS) as a pure state machine.

Sans-I/O: ``receive(bytes)`` consumes what the client sent and returns a ``Step``: the reply bytes to send
(every reply of a pipelined batch in one buffer) and at most one ``action`` the caller must carry out before it
calls ``resume``: ``Deliver`` (store the message, answer with the reply ``resume`` gets), ``StartTLS``
(upgrade the connection, then ``tls_started``) or ``Close``. While an action is pending, input is only
buffered, so replies always come in command order. DATA is decoded by ``mailpipe.core.edge.data`` (strict end marker,
no SMTP smuggling). Replies carry RFC 3463 enhanced status codes (ENHANCEDSTATUSCODES is advertised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailpipe.core import metrics
from mailpipe.core.edge.actions import Action, Close, Deliver, StartTLS, Step
from mailpipe.core.edge.data import DataDecoder
from mailpipe.core.edge.paths import path_arg

if TYPE_CHECKING:
    from collections.abc import Callable

COMMAND_LIMIT = 2048  # RFC 5321 4.5.3.1.4: 512 octets, raised by extensions; generous for long parameter lists
MAX_ERRORS = 20  # bad commands before the session is closed (a client talking another protocol)
HELP = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS"


class _More:
    """Internal: the buffered input holds no complete command (or DATA has not ended yet)."""


MORE = _More()


@dataclass
class _Transaction:
    mail_from: str
    rcpt_to: list[str] = field(default_factory=list)


class Session:
    """One connection's SMTP state. ``check_rcpt(address, accepted_so_far)`` returns a refusal reply or None."""

    def __init__(
        self,
        *,
        hostname: str,
        max_size: int,
        max_line: int,
        check_rcpt: Callable[[str, int], str | None],
        tls_available: bool = False,
    ) -> None:
        self.hostname, self.max_size, self.max_line = hostname, max_size, max_line
        self._check_rcpt, self._tls_available = check_rcpt, tls_available
        self.tls = False
        self.helo: str | None = None
        self._tx: _Transaction | None = None
        self._data: DataDecoder | None = None
        self._buf = bytearray()
        self._skip_line = False  # discarding the rest of an over-long command line
        self._blocked = self._closed = False
        self._errors = 0
        self._out: list[bytes] = []

    def greeting(self) -> bytes:
        return f"220 {self.hostname} mailpipe ESMTP\r\n".encode()

    def receive(self, data: bytes) -> Step:
        """Consume client bytes; returns the replies and the action to carry out (if any)."""
        if self._data is not None and not self._buf and not self._blocked:
            return self._run(data)  # DATA chunks go to the decoder without another copy
        self._buf += data
        return Step() if self._blocked or self._closed else self._run()

    def resume(self, reply: str | None = None) -> Step:
        """The pending action finished: send ``reply`` (if any) and go on with the buffered input."""
        self._blocked = False
        if reply is not None:
            self._reply(reply)
        return self._run()

    def tls_started(self) -> Step:
        """RFC 3207 4.2: after the handshake the session starts over; the client must EHLO again."""
        self.tls, self.helo, self._tx = True, None, None
        return self.resume()

    @property
    def blocked(self) -> bool:
        return self._blocked

    # -- the loop -----------------------------------------------------------------------------------------

    def _run(self, fresh: bytes = b"") -> Step:
        action: Action | _More | None = None
        while action is None:
            if self._data is not None:
                action, fresh = self._data_step(fresh), b""
            else:
                action = self._command_step()
        out, self._out = b"".join(self._out), []
        if isinstance(action, _More):
            return Step(out)
        self._blocked, self._closed = not isinstance(action, Close), isinstance(action, Close)
        return Step(out, action)

    def _reply(self, line: str) -> None:
        if line[0] in "45":
            metrics.inc("mailpipe_smtp_refused_total", reason=line[:9].rstrip())  # "550 5.7.1"
        self._out.append(line.encode() + b"\r\n")

    def _data_step(self, fresh: bytes) -> Action | _More | None:
        decoder = self._data
        assert decoder is not None and self._tx is not None
        chunk = fresh or bytes(self._buf)
        self._buf.clear()
        leftover = decoder.feed(chunk) if chunk else None
        if leftover is None:
            return MORE
        self._buf[:0] = leftover
        tx, self._tx, self._data = self._tx, None, None
        if decoder.error is not None:
            self._reply(decoder.error.reply)
            return None
        return Deliver(tx.mail_from, tuple(tx.rcpt_to), decoder.message, self.helo or "")

    def _command_step(self) -> Action | _More | None:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > COMMAND_LIMIT:
                if not self._skip_line:
                    self._reply("500 5.5.2 Line too long")
                self._skip_line = True
                self._buf.clear()
            return MORE
        raw_line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        if self._skip_line or end > COMMAND_LIMIT:
            if not self._skip_line:
                self._reply("500 5.5.2 Line too long")
            self._skip_line = False
            return None
        if raw_line.endswith(b"\r"):
            raw_line = raw_line[:-1]
        try:
            line = raw_line.decode()
        except UnicodeDecodeError:
            return self._error("500 5.5.2 Error: command must be ASCII or UTF-8")
        verb, _, arg = line.partition(" ")
        handler = _COMMANDS.get(verb.upper())
        if handler is None:
            return self._error("500 5.5.2 Error: bad syntax" if not verb else "500 5.5.1 Command not recognized")
        return handler(self, arg.strip())

    def _error(self, reply: str) -> Action | None:
        self._errors += 1
        if self._errors >= MAX_ERRORS:
            self._reply("421 4.7.0 Too many errors, closing connection")
            return Close()
        self._reply(reply)
        return None

    # -- commands -------------------------------------------------------------------------------------------

    def _ehlo(self, arg: str) -> Action | None:
        if not arg:
            return self._error("501 5.5.4 Syntax: EHLO hostname")
        self.helo, self._tx = arg, None
        lines = [self.hostname, f"SIZE {self.max_size}", "8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"]
        if self._tls_available and not self.tls:
            lines.append("STARTTLS")
        lines.append("HELP")
        for line in lines[:-1]:
            self._reply(f"250-{line}")
        self._reply(f"250 {lines[-1]}")
        return None

    def _helo(self, arg: str) -> Action | None:
        if not arg:
            return self._error("501 5.5.4 Syntax: HELO hostname")
        self.helo, self._tx = arg, None
        self._reply(f"250 {self.hostname}")
        return None

    def _mail(self, arg: str) -> Action | None:
        if self.helo is None:
            return self._error("503 5.5.1 Error: send HELO first")
        if self._tx is not None:
            return self._error("503 5.5.1 Error: nested MAIL command")
        parsed = path_arg(arg, "FROM:")
        if parsed is None:
            return self._error("501 5.5.4 Syntax: MAIL FROM:<address>")
        address, params = parsed
        if address is None:
            return self._error("553 5.1.7 Error: malformed sender address")
        for name, value in params:
            if name == "SIZE":
                if not (value.isascii() and value.isdigit()):  # "²".isdigit() but int("²") raises
                    return self._error("501 5.5.4 Syntax: SIZE=<number>")
                if int(value) > self.max_size:
                    self._reply("552 5.3.4 Message size exceeds fixed maximum message size")
                    return None
            elif name == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return self._error("501 5.5.4 Error: BODY is 7BIT or 8BITMIME")
            elif name != "SMTPUTF8" or value:
                return self._error(f"555 5.5.4 Error: MAIL parameter {name!a} not supported")
        self._tx = _Transaction(address)
        self._reply("250 2.1.0 OK")
        return None

    def _rcpt(self, arg: str) -> Action | None:
        if self._tx is None:
            return self._error("503 5.5.1 Error: need MAIL command")
        parsed = path_arg(arg, "TO:")
        if parsed is None:
            return self._error("501 5.5.4 Syntax: RCPT TO:<address>")
        address, params = parsed
        if params:
            return self._error(f"555 5.5.4 Error: RCPT parameter {params[0][0]!a} not supported")
        if not address:
            return self._error("553 5.1.3 Error: malformed recipient address")
        refusal = self._check_rcpt(address, len(self._tx.rcpt_to))
        if refusal is not None:
            self._reply(refusal)
            return None
        self._tx.rcpt_to.append(address)
        self._reply("250 2.1.5 OK")
        return None

    def _data_cmd(self, arg: str) -> Action | None:
        if self._tx is None:
            return self._error("503 5.5.1 Error: need MAIL command")
        if not self._tx.rcpt_to:
            return self._error("503 5.5.1 Error: need RCPT command")
        if arg:
            return self._error("501 5.5.4 Syntax: DATA")
        self._data = DataDecoder(self.max_size, self.max_line)
        self._reply("354 End data with <CR><LF>.<CR><LF>")
        return None

    def _rset(self, arg: str) -> Action | None:
        self._tx = None
        self._reply("250 2.0.0 OK")
        return None

    def _noop(self, arg: str) -> Action | None:
        self._reply("250 2.0.0 OK")
        return None

    def _quit(self, arg: str) -> Action | None:
        self._reply("221 2.0.0 Bye")
        return Close()

    def _vrfy(self, arg: str) -> Action | None:
        if not arg:
            return self._error("501 5.5.4 Syntax: VRFY <address>")
        self._reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery")
        return None

    def _help(self, arg: str) -> Action | None:
        self._reply(HELP)
        return None

    def _starttls(self, arg: str) -> Action | None:
        if arg:
            return self._error("501 5.5.4 Syntax: STARTTLS")
        if self.tls:
            return self._error("503 5.5.1 Error: TLS already active")
        if not self._tls_available:
            return self._error("454 4.7.0 TLS not available")
        self._reply("220 2.0.0 Ready to start TLS")
        self._buf.clear()  # anything pipelined after STARTTLS was sent in clear text: never act on it
        return StartTLS()

    def _not_offered(self, arg: str) -> Action | None:
        return self._error("502 5.5.1 Error: command not implemented")


_COMMANDS: dict[str, Callable[[Session, str], Action | None]] = {
    "EHLO": Session._ehlo,
    "HELO": Session._helo,
    "MAIL": Session._mail,
    "RCPT": Session._rcpt,
    "DATA": Session._data_cmd,
    "RSET": Session._rset,
    "NOOP": Session._noop,
    "QUIT": Session._quit,
    "VRFY": Session._vrfy,
    "HELP": Session._help,
    "STARTTLS": Session._starttls,
    "EXPN": Session._not_offered,
    "AUTH": Session._not_offered,
    "BDAT": Session._not_offered,
    "ETRN": Session._not_offered,
    "TURN": Session._not_offered,
}
