"""``calendar``: ``text/calendar`` invitations (icalendar) -> method, and per event uid, organizer, attendees,
start/end, summary, location, status, sequence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip

if TYPE_CHECKING:
    from mailpipe.core.enrich.view import MessageView

CALENDAR_TYPES = ("text/calendar", "application/ics")


class CalendarEnricher:
    name = "calendar"
    requires = ("icalendar",)
    version = "1"
    wants = frozenset({"attachments"})
    timeout = 10.0
    max_bytes = 2 * 1024 * 1024

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        parts = [
            p for p in view.parts if p.content_type in CALENDAR_TYPES or (p.filename or "").lower().endswith(".ics")
        ]
        if not parts:
            raise Skip("no text/calendar part")
        from icalendar import Calendar

        calendars: list[dict[str, Any]] = []
        for part in parts:
            try:
                cal = Calendar.from_ical(part.data[: self.max_bytes])
            except ValueError as exc:
                calendars.append({"object": part.path, "error": f"{exc}"[:200], "method": None, "events": []})
                continue
            events = [_event(e) for e in cal.walk("VEVENT")]
            calendars.append({"object": part.path, "error": None, "method": _text(cal.get("METHOD")), "events": events})
        return {"calendars": calendars}


def _event(ev: Any) -> dict[str, Any]:
    attendees = ev.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    return {
        "uid": _text(ev.get("UID")),
        "summary": _text(ev.get("SUMMARY")),
        "location": _text(ev.get("LOCATION")),
        "status": _text(ev.get("STATUS")),
        "sequence": int(ev.get("SEQUENCE", 0)),
        "start": _when(ev.get("DTSTART")),
        "end": _when(ev.get("DTEND")),
        "organizer": _person(ev.get("ORGANIZER")),
        "attendees": [_person(a) for a in attendees],
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _when(prop: Any) -> str | None:
    return None if prop is None else prop.dt.isoformat()


def _person(prop: Any) -> dict[str, Any] | None:
    if prop is None:
        return None
    params = getattr(prop, "params", {})
    return {
        "address": str(prop).removeprefix("mailto:").removeprefix("MAILTO:"),
        "name": params.get("CN"),
        "role": params.get("ROLE"),
        "partstat": params.get("PARTSTAT"),
    }
