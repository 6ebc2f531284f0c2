import pytest
from pydantic import ValidationError

from services.intake.forms import MAX_MESSAGE_CHARS, FormSubmission, form_channel_key

VALID = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "help"}


def test_a_valid_submission():
    submission = FormSubmission.model_validate({**VALID, "phone": ""})
    assert submission.phone is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"message": ""}, "message"),
        ({"message": "x" * (MAX_MESSAGE_CHARS + 1)}, "message"),
        ({"phone": "call me"}, "phone"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_fields_are_named(change, field):
    with pytest.raises(ValidationError) as caught:
        FormSubmission.model_validate({**VALID, **change})
    assert [error["loc"][0] for error in caught.value.errors()] == [field]


def test_missing_email_is_named():
    with pytest.raises(ValidationError) as caught:
        FormSubmission.model_validate({k: v for k, v in VALID.items() if k != "email"})
    assert caught.value.errors()[0]["loc"] == ("email",)


def test_idempotency_key_fixes_the_channel_message():
    assert form_channel_key("contact", "k1") == form_channel_key("contact", "k1")
    assert form_channel_key("contact", "k1") != form_channel_key("contact", "k2")
    assert form_channel_key("contact", None) != form_channel_key("contact", None)
