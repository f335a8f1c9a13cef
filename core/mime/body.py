"""Body selection: which leaves are the message's text/html body and which are attachments.

This is the RFC 8621 (JMAP) section 4.1.4 ``parseStructure`` algorithm, which Stalwart implements, with one
deliberate change: every leaf that is not a text/plain or text/html body part is an attachment, inline images
included (JMAP lists inline images only in the body lists when both text and HTML bodies exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailpipe.core.mime.parts import Part

_BODY_TYPES = ("text/plain", "text/html")
_MEDIA = ("image", "audio", "video")


def select(root: Part) -> tuple[list[Part], list[Part], list[Part]]:
    """(text_body, html_body, attachments) in document order.

    The body lists hold only text/plain resp. text/html parts; attachments are every other leaf."""
    text: list[Part] = []
    html: list[Part] = []
    jmap_atts: list[Part] = []  # JMAP's own attachment list; ours is every leaf not used as body (below)
    if root.ctype == "multipart":
        _walk(root.children, root.sub, root.sub == "alternative", html, text, jmap_atts)
    else:
        _walk([root], "mixed", False, html, text, jmap_atts)
    text_parts = [p for p in text if p.mime == "text/plain"]
    html_parts = [p for p in html if p.mime == "text/html"]
    body_ids = {id(p) for p in text_parts + html_parts}
    return text_parts, html_parts, [p for p in _leaves(root) if id(p) not in body_ids]


def _leaves(p: Part) -> list[Part]:
    if not p.children:
        return [] if p.ctype == "multipart" else [p]
    out: list[Part] = []
    for c in p.children:
        out.extend(_leaves(c))
    return out


def _walk(
    parts: list[Part],
    mtype: str,
    in_alt: bool,
    html: list[Part] | None,
    text: list[Part] | None,
    atts: list[Part],
) -> None:
    text_len = len(text) if text is not None else -1
    html_len = len(html) if html is not None else -1
    for i, part in enumerate(parts):
        mime = part.mime
        inline = (
            part.disposition != "attachment"
            and (mime in _BODY_TYPES or part.ctype in _MEDIA)
            and (i == 0 or (mtype != "related" and (part.ctype in _MEDIA or not part.filename)))
        )
        if part.ctype == "multipart":
            _walk(part.children, part.sub, in_alt or part.sub == "alternative", html, text, atts)
        elif inline:
            if mtype == "alternative":
                target = text if mime == "text/plain" else html if mime == "text/html" else atts
                if target is not None:
                    target.append(part)
                continue
            if in_alt:  # a mixed inside an alternative feeds only the view of its own type from here on
                html = None if mime == "text/plain" else html
                text = None if mime == "text/html" else text
            if text is not None:
                text.append(part)
            if html is not None:
                html.append(part)
        else:
            atts.append(part)
    if mtype == "alternative" and text is not None and html is not None:
        if text_len == len(text) and html_len != len(html):
            text.extend(html[html_len:])
        if html_len == len(html) and text_len != len(text):
            html.extend(text[text_len:])
