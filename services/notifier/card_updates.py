"""Which ticket cards a batch of events updates, in pure code: one update per card and batch.

Every change of a ticket (status, priority, tags, assignee, queue, escalation, merge, rating, SLA)
updates its card in the team channel and in the current assignee's DM. The update is built when it
is sent, from the read model then, so one per ticket and batch shows all of the batch's changes;
it is keyed by the batch's last change of the ticket, so a redelivered batch updates nothing again.
A card posted in the same batch shows the current state already and is not updated.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.notifier.plan import Delivery, NotifierView, TicketContext, team_of
from shared.config import DeskConfig
from shared.events import (
    CsatRated,
    PriorityChanged,
    SlaBreached,
    SlaDeadlineSet,
    SlaMet,
    SlaWarning,
    StatusChanged,
    TagsChanged,
    TicketAssigned,
    TicketEscalated,
    TicketEvent,
    TicketMerged,
    TicketQueued,
)

CARD_CHANGES = (
    StatusChanged,
    PriorityChanged,
    TagsChanged,
    TicketAssigned,
    TicketQueued,
    TicketEscalated,
    TicketMerged,
    CsatRated,
    SlaDeadlineSet,
    SlaWarning,
    SlaBreached,
    SlaMet,
)


def card_updates(
    events: Sequence[TicketEvent], planned: Sequence[Delivery], view: NotifierView, config: DeskConfig
) -> list[Delivery]:
    """The `card_update` deliveries for `events`; `planned` are the batch's other deliveries (cards posted now)."""
    last: dict[str, TicketEvent] = {}
    for event in events:
        if isinstance(event, CARD_CHANGES):
            last[event.ticket_id] = event
    posted = {(d.ticket_id, d.target) for d in planned if d.purpose in ("announcement", "assignment_dm")}
    updates = []
    for ticket_id, event in last.items():
        ticket = view.tickets.get(ticket_id, TicketContext())
        targets = [("card", f"slack:{team_of(ticket.team, config).slack_channel}")]
        if ticket.assignee_slack_user_id:
            targets.append(("dm-card", f"slack:{ticket.assignee_slack_user_id}"))
        updates += [
            Delivery(
                key=f"{event.event_id}:{name}",
                ticket_id=ticket_id,
                purpose="card_update",
                target=target,
                text=f"card of {ticket_id} updated after {event.type}",
                correlation_id=event.correlation_id,
                on_card=True,
            )
            for name, target in targets
            if (ticket_id, target) not in posted
        ]
    return updates
