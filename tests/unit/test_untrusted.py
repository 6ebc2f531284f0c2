"""shared/untrusted.py: JSON from outside, and what its refusals say about it."""

import pytest

from shared.untrusted import InvalidJson, parse_json_object


@pytest.mark.parametrize(
    ("body", "json_type", "message"),
    [
        (b"[1]", "array", "expected a JSON object, got an array"),
        (b'"x"', "string", "expected a JSON object, got a string"),
        (b"true", "boolean", "expected a JSON object, got a boolean"),
        (b"null", "null", "expected a JSON object, got null"),
        (b"1.5", "number", "expected a JSON object, got a number"),
    ],
)
def test_json_of_another_type_names_its_type(body, json_type, message):
    with pytest.raises(InvalidJson) as refused:
        parse_json_object(body)
    assert (refused.value.json_type, refused.value.reason, str(refused.value)) == (json_type, None, message)


def test_no_json_gives_the_parsers_reason():
    with pytest.raises(InvalidJson) as refused:
        parse_json_object(b'{"a": ')
    assert refused.value.json_type is None and refused.value.reason
    assert str(refused.value) == f"invalid JSON: {refused.value.reason}"
