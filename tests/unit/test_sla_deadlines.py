import uuid
from datetime import UTC, datetime, timedelta

from services.sla.deadlines import Timer, announcement
from services.sla.decide import decide
from shared.events import ContactSummary, SlaBreached, SlaWarning, TicketCreated
from tests.unit.test_sla_decide import CONFIG

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


def timers_of(created_event: TicketCreated) -> list[Timer]:
    return decide([created_event], {}, CONFIG).timers["SB-1001", "first_response"]


def test_first_response_timers_fire_at_each_warning_and_at_the_breach():
    """The example config's support policy: 4 hours, a warning at 75 %."""
    start = CREATED_AT.timestamp()
    assert [(t.kind, t.fires_at - start) for t in timers_of(created())] == [("warning", 3 * 3600), ("breach", 4 * 3600)]


def test_timers_encode_stably_so_rescheduling_is_idempotent():
    event = created()
    first, again = timers_of(event), timers_of(event)
    assert [t.encode() for t in first] == [t.encode() for t in again]
    assert Timer.decode(first[0].encode()) == first[0]


def test_announcements_have_one_event_id_per_deadline():
    warning, breach = timers_of(created())
    now = datetime.now(UTC)
    assert isinstance(announcement(warning, now), SlaWarning)
    fired = announcement(breach, now)
    assert isinstance(fired, SlaBreached)
    assert fired.event_id == announcement(breach, now + timedelta(seconds=5)).event_id
    assert fired.event_id != announcement(warning, now).event_id
