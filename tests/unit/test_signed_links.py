"""Signed link tokens (shared/signed_links.py): CSAT and "this solved it" links keep the format of the links
already sent, read back what they name, and refuse forged, foreign, misshapen and expired tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from services.knowledge.deflection import DeflectionTokens
from shared.csat import CsatSubject, CsatTokens
from shared.signed_links import TOKEN_VALID_SECONDS, InvalidToken

SECRET = "legacy secret"
ISSUED_AT = int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp())
# Issued at ISSUED_AT over SECRET by the code before shared/signed_links.py (shared/csat.py CsatTokens and
# services/knowledge/deflection.py DeflectionTokens with their own itsdangerous serializers): links in
# customers' mailboxes look like these and must keep working.
LEGACY_CSAT = "WyJTQi0xMDQyIiwyXQ.aw62wA.Hj9sQrVo3M63TPOgAJMec1iQz_k"
LEGACY_DEFLECTION = "IlNCLTEwNDIi.aw62wA.lM_isBdc6PPNOLYJ15aoj0X0OcQ"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """Sets itsdangerous' clock (seconds since the epoch) for issuing and for checking a token's age."""

    def set_to(seconds: int) -> None:
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: seconds)

    return set_to


def test_links_already_sent_still_verify_and_new_ones_are_issued_alike(clock):
    clock(ISSUED_AT)
    assert CsatTokens(SECRET).issue(CsatSubject("SB-1042", 2)) == LEGACY_CSAT
    assert DeflectionTokens(SECRET).issue("SB-1042") == LEGACY_DEFLECTION
    clock(ISSUED_AT + 13 * 86_400)
    assert CsatTokens(SECRET).read(LEGACY_CSAT) == CsatSubject("SB-1042", 2)
    assert DeflectionTokens(SECRET).read(LEGACY_DEFLECTION) == "SB-1042"


def test_a_token_older_than_fourteen_days_has_expired(clock):
    clock(ISSUED_AT + TOKEN_VALID_SECONDS + 1)
    for tokens, token, message in (
        (CsatTokens(SECRET), LEGACY_CSAT, "this rating link has expired"),
        (DeflectionTokens(SECRET), LEGACY_DEFLECTION, "this link has expired"),
    ):
        with pytest.raises(InvalidToken, match=message) as refused:
            tokens.read(token)
        assert refused.value.expired


@pytest.mark.parametrize(
    "token",
    [
        CsatTokens("another secret").issue(CsatSubject("SB-1042", 2)),
        DeflectionTokens(SECRET).issue("SB-1042"),  # another kind of link over the same secret
        LEGACY_CSAT[:-2],
        "not-a-token",
        "",
        URLSafeTimedSerializer(SECRET, salt="switchboard.csat.v1").dumps(["SB-1042", "2"]),
        URLSafeTimedSerializer(SECRET, salt="switchboard.csat.v1").dumps(["SB-1042", 2, 3]),
        URLSafeTimedSerializer(SECRET, salt="switchboard.csat.v1").dumps({"ticket": "SB-1042"}),
        URLSafeTimedSerializer(SECRET, salt="switchboard.csat.v1").dumps(7),
    ],
)
def test_a_csat_token_forged_damaged_foreign_or_misshapen_is_not_valid(token):
    with pytest.raises(InvalidToken, match="this rating link is not valid") as refused:
        CsatTokens(SECRET).read(token)
    assert not refused.value.expired


@pytest.mark.parametrize(
    "token",
    [
        DeflectionTokens("another secret").issue("SB-1042"),
        CsatTokens(SECRET).issue(CsatSubject("SB-1042", 2)),
        LEGACY_DEFLECTION[:-2],
        "not-a-token",
        URLSafeTimedSerializer(SECRET, salt="switchboard.deflection.v1").dumps(["SB-1042"]),
        URLSafeTimedSerializer(SECRET, salt="switchboard.deflection.v1").dumps(None),
    ],
)
def test_a_deflection_token_forged_damaged_foreign_or_misshapen_is_not_valid(token):
    with pytest.raises(InvalidToken, match="this link is not valid") as refused:
        DeflectionTokens(SECRET).read(token)
    assert not refused.value.expired


@given(ticket_id=st.text(max_size=40), resolution=st.integers(min_value=1, max_value=10**6))
def test_tokens_read_back_what_they_were_issued_for(ticket_id: str, resolution: int):
    subject = CsatSubject(ticket_id, resolution)
    assert CsatTokens(SECRET).read(CsatTokens(SECRET).issue(subject)) == subject
    assert DeflectionTokens(SECRET).read(DeflectionTokens(SECRET).issue(ticket_id)) == ticket_id
