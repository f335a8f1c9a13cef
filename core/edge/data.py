"""Incremental SMTP DATA decoding (RFC 5321 4.5.2), fast and strict. Pure: no I/O, no protocol library.

Feed the bytes that follow the 354 reply in chunks of any size. The only end of data is ``<CRLF>.<CRLF>``
(or ``.<CRLF>`` as the very first line); bare-LF / bare-CR variants such as ``<LF>.<LF>`` or ``<CR>.<CR>``
never end DATA. A message that contains a bare CR or LF at all is refused once its real end is reached (SMTP
smuggling defence, like Postfix's ``smtpd_forbid_bare_newline``): one DATA never becomes two messages.
"""

from __future__ import annotations

import enum

END = b"\r\n.\r\n"


class DataError(enum.Enum):
    """Why a DATA transfer is refused; ``reply`` is the SMTP answer sent after the end of data."""

    TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
    BARE_NEWLINE = "554 5.5.2 Message refused: bare CR or LF in data (RFC 5321 2.3.8)"
    LINE_TOO_LONG = "554 5.5.2 Message refused: line too long"

    @property
    def reply(self) -> str:
        return self.value


class DataDecoder:
    """Collects one DATA transfer; ``feed`` returns the bytes after the end marker (pipelined commands).

    The chunks are kept as received and joined once at the end (one copy of the message). Memory is bounded by
    ``max_bytes``: past the limit the data is discarded while the end marker is searched.
    """

    def __init__(self, max_bytes: int, max_line: int) -> None:
        self.max_bytes, self.max_line = max_bytes, max_line
        self._chunks: list[bytes | memoryview] = []
        self._kept = 0  # bytes in _chunks
        self._dropped = 0  # bytes discarded past the limit
        self._tail = b"\r\n"  # the stream's last bytes (< len(END)); a virtual CRLF makes a leading ".\r\n" an end
        self.done = False
        self.error: DataError | None = None
        self.message = b""

    @property
    def size(self) -> int:
        """Bytes received so far (dot-stuffed, excluding the end marker)."""
        return self._dropped + self._kept

    def feed(self, chunk: bytes) -> bytes | None:
        """Consume ``chunk``; return None while more data is needed, else the leftover bytes after the end."""
        tail = self._tail
        end = (tail + chunk[: len(END) - 1]).find(END)  # a marker begun in earlier chunks comes first
        if end >= 0:
            stop, after = end + 2 - len(tail), end + len(END) - len(tail)  # stop < 0: the CRLF was earlier
        else:
            end = chunk.find(END)
            if end < 0:
                self._keep(chunk)
                return None
            stop, after = end + 2, end + len(END)  # keep the last line's CRLF
        self.done = True
        self._finish(chunk, stop)
        return chunk[after:]

    def _keep(self, chunk: bytes) -> None:
        keep = len(END) - 1
        self._tail = chunk[-keep:] if len(chunk) >= keep else (self._tail + chunk)[-keep:]
        if self.error is not None:
            self._dropped += len(chunk)
            return
        self._chunks.append(chunk)
        self._kept += len(chunk)
        if self.size - 2 > self.max_bytes:  # the last 2 bytes may be ".\r" of the end marker
            self.error = DataError.TOO_BIG
            self._dropped, self._kept, self._chunks = self._dropped + self._kept, 0, []

    def _finish(self, chunk: bytes, stop: int) -> None:
        if self.error is not None or self.size + stop > self.max_bytes:
            self.error = DataError.TOO_BIG
            self._chunks = []
            return
        parts, self._chunks = self._chunks, []
        if stop > 0:
            parts.append(memoryview(chunk)[:stop])
        data = b"".join(parts)  # the one copy
        if stop < 0:
            data = data[:stop]  # the marker began in earlier chunks (small reads only)
        crlf = data.count(b"\r\n")
        if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
            self.error = DataError.BARE_NEWLINE
        elif _has_long_line(data, self.max_line):
            self.error = DataError.LINE_TOO_LONG
        else:  # RFC 5321 4.5.2: drop the first "." of every line that starts with one (same object if none)
            data = data.replace(b"\r\n.", b"\r\n")
            self.message = data[1:] if data.startswith(b".") else data


def _has_long_line(data: bytes, limit: int) -> bool:
    """True if a line (CRLF excluded) is longer than ``limit``; jumps from the last CRLF of each window."""
    start, end = 0, len(data)
    while end - start > limit:
        last = data.rfind(b"\r\n", start, start + limit + 2)
        if last < 0:
            return True
        start = last + 2
    return False
