"""Bounded MIME parsing: ``parser.parse(raw) -> ParseResult``; the other modules are its helpers."""
