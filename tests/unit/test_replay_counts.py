"""`switchboard replay` counts every event type of the contacts topic (an unknown one would stop the replay)."""

from __future__ import annotations

from shared.topics import CONTACTS
from switchboard.replay import _CONTACT_COUNTS


def test_every_contact_event_type_has_a_line_in_the_replay_report():
    assert set(_CONTACT_COUNTS) == CONTACTS.event_types()
