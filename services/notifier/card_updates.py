"""Which ticket cards a batch of events updates, in pure code: one update per card and batch.

Every change of a ticket (status, priority, tags, assignee, queue, escalation, merge, rating, SLA)
updates its card in the team channel and in the current assignee's DM. The update is built when it
is sent, from the read model then, so one per ticket and batch shows all of the batch's changes;
it is keyed by the batch's last change of the ticket, so a redelivered batch updates nothing again.
A card posted in the same batch shows the current state already and is not updated. A ticket that
moved (assigned or queued) also updates, one last time, the cards it left: another team's channel
card and the previous assignee's DM card, so they show where it went.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.notifier.plan import Delivery, NotifierView, TicketContext, slack_user, team_of
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
    TicketSuggestions,
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
    TicketSuggestions,
)


def card_updates(
    events: Sequence[TicketEvent], planned: Sequence[Delivery], view: NotifierView, config: DeskConfig
) -> list[Delivery]:
    """The `card_update` deliveries for `events`; `planned` are the batch's other deliveries (cards posted now)."""
    last: dict[str, TicketEvent] = {}
    # The agents each moved ticket was taken from in the batch (None: it was in a queue).
    left: dict[str, list[str | None]] = {}
    for event in events:
        if isinstance(event, CARD_CHANGES):
            last[event.ticket_id] = event
        if isinstance(event, TicketAssigned | TicketQueued):
            left.setdefault(event.ticket_id, []).append(event.previous_agent_id)
    posted = {(d.ticket_id, d.target) for d in planned if d.purpose in ("announcement", "assignment_dm")}
    updates = []
    for ticket_id, event in last.items():
        ticket = view.tickets.get(ticket_id, TicketContext())
        # name by target: the key of each update is the change's ID and this name.
        targets = {f"slack:{team_of(ticket.team, config).slack_channel}": "card"}
        if ticket.assignee_slack_user_id:
            targets[f"slack:{ticket.assignee_slack_user_id}"] = "dm-card"
        if ticket_id in left:
            for target in ticket.cards:
                targets.setdefault(target, f"left-card:{target}")
            for agent_id in left[ticket_id]:
                if user := slack_user(agent_id, config):
                    targets.setdefault(f"slack:{user}", f"left-dm-card:{user}")
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
            for target, name in targets.items()
            if (ticket_id, target) not in posted
        ]
    return updates
