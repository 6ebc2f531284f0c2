import uuid
from datetime import UTC, datetime, timedelta

from services.sla.deadlines import Timer, announcement, first_response_deadline, timers_for
from shared.config import SlaPolicy
from shared.events import ContactSummary, SlaBreached, SlaWarning, TicketCreated

CREATED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def created() -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=CREATED_AT,
        ticket_id="SB-1001",
        channel="form",
        subject="x",
        contact=ContactSummary(contact_id="c_1"),
        team="support",
        category="general",
        priority="normal",
    )


def test_first_response_deadline_and_its_timers():
    policy = SlaPolicy(id="standard", first_response=timedelta(hours=4), warn_at=[0.5, 0.75])
    deadline = first_response_deadline(created(), policy)
    assert deadline.due_at == CREATED_AT + timedelta(hours=4)
    timers = timers_for(deadline)
    start = CREATED_AT.timestamp()
    assert [(t.kind, t.fires_at - start) for t in timers] == [
        ("warning", 2 * 3600),
        ("warning", 3 * 3600),
        ("breach", 4 * 3600),
    ]


def test_timers_encode_stably_so_rescheduling_is_idempotent():
    policy = SlaPolicy(id="standard", first_response=timedelta(minutes=30))
    event = created()
    first = timers_for(first_response_deadline(event, policy))
    again = timers_for(first_response_deadline(event, policy))
    assert [t.encode() for t in first] == [t.encode() for t in again]
    assert Timer.decode(first[0].encode()) == first[0]


def test_announcements_have_one_event_id_per_deadline():
    policy = SlaPolicy(id="standard", first_response=timedelta(minutes=30), warn_at=[0.75])
    warning, breach = timers_for(first_response_deadline(created(), policy))
    now = datetime.now(UTC)
    assert isinstance(announcement(warning, now), SlaWarning)
    fired = announcement(breach, now)
    assert isinstance(fired, SlaBreached)
    assert fired.event_id == announcement(breach, now + timedelta(seconds=5)).event_id
    assert fired.event_id != announcement(warning, now).event_id
