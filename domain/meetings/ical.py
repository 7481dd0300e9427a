"""Meetings as iCalendar (RFC 5545), written with the icalendar library: feeds and invitations.

Each meeting is one VEVENT whose UID never changes; SEQUENCE is the meeting's revision count, so a
calendar that subscribed to a feed (METHOD:PUBLISH) or received an invitation (iTIP, RFC 5546:
METHOD:REQUEST / METHOD:CANCEL) replaces the old copy in place, and a cancelled meeting carries
STATUS:CANCELLED so subscribers remove it.
"""

from __future__ import annotations

from collections.abc import Iterable

from icalendar import Calendar as ICalendar
from icalendar import Event, vCalAddress

from domain import __version__
from domain.accounts.models import User
from domain.meetings.models import Meeting, MeetingStatus, RsvpResponse

MEDIA_TYPE = "text/calendar"
PRODID = f"-//LabHub//LabHub {__version__}//EN"
UID_DOMAIN = "meetings.labhub"
PARTSTAT = {
    RsvpResponse.YES: "ACCEPTED",
    RsvpResponse.NO: "DECLINED",
    RsvpResponse.MAYBE: "TENTATIVE",
    None: "NEEDS-ACTION",
}


def meeting_uid(meeting_id: str) -> str:
    return f"{meeting_id}@{UID_DOMAIN}"


def _address(user: User, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{user.email}")
    address.params["cn"] = user.name.replace('"', "'")  # a parameter value cannot hold a double quote
    address.params.update(params)
    return address


def meeting_event(meeting: Meeting, people: dict[str, User], *, rsvp: bool = False) -> Event:
    """One meeting as a VEVENT; rsvp asks invitees' calendars to offer an answer (invitations)."""
    event = Event()
    event.add("uid", meeting_uid(meeting.id))
    event.add("dtstamp", meeting.updated_at)
    event.add("created", meeting.created_at)
    event.add("last-modified", meeting.updated_at)
    event.add("sequence", meeting.sequence)
    event.add("dtstart", meeting.starts_at)
    event.add("dtend", meeting.ends_at)
    event.add("summary", meeting.title)
    cancelled = meeting.status is MeetingStatus.CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    description = "\n\n".join(part for part in (meeting.agenda, meeting.link or "") if part)
    if description:
        event.add("description", description)
    if meeting.location or meeting.link:
        event.add("location", meeting.location or meeting.link)
    if meeting.link:
        event.add("url", meeting.link)
    organiser = people.get(meeting.created_by)
    if organiser is not None:
        event.add("organizer", _address(organiser), encode=False)
    for user_id in meeting.attendee_ids:
        user = people.get(user_id)
        if user is not None:
            params = {"role": "REQ-PARTICIPANT", "partstat": PARTSTAT[meeting.rsvp_of(user_id)],
                      "cutype": "INDIVIDUAL"}  # fmt: skip
            if rsvp:
                params["rsvp"] = "TRUE"
            event.add("attendee", _address(user, **params), encode=False)
    return event


def calendar_document(events: Iterable[Event], *, method: str, name: str | None = None) -> bytes:
    document = ICalendar()
    document.add("prodid", PRODID)
    document.add("version", "2.0")
    document.add("calscale", "GREGORIAN")
    document.add("method", method)
    if name is not None:
        document.add("x-wr-calname", name)
    for event in events:
        document.add_component(event)
    return bytes(document.to_ical())


def feed_ical(meetings: Iterable[Meeting], people: dict[str, User], *, name: str) -> bytes:
    """A calendar file or subscription feed (METHOD:PUBLISH)."""
    return calendar_document((meeting_event(m, people) for m in meetings), method="PUBLISH", name=name)


def invitation_ical(meeting: Meeting, people: dict[str, User], *, method: str) -> bytes:
    """An iTIP message for one meeting: REQUEST (invitation or change) or CANCEL."""
    return calendar_document([meeting_event(meeting, people, rsvp=method == "REQUEST")], method=method)
