from hypothesis import given
from hypothesis import strategies as st

from services.intake.core import with_refusals


def test_nothing_refused_keeps_the_text():
    assert with_refusals("hello", []) == "hello"
    assert with_refusals("", []) == ""


def test_each_refused_file_is_one_line_after_the_text():
    assert with_refusals("my invoice", ["invoice.exe: not allowed", "big.mov is too large"]) == (
        "my invoice\n[attachment refused: invoice.exe: not allowed]\n[attachment refused: big.mov is too large]"
    )


@given(st.text(), st.lists(st.text(alphabet=st.characters(blacklist_characters="\n\r"), min_size=1)))
def test_the_text_comes_first_and_every_reason_is_named(text, reasons):
    result = with_refusals(text, reasons)
    assert result.startswith(text)
    tail = result[len(text) :].split("\n")[1:]
    assert tail == [f"[attachment refused: {reason}]" for reason in reasons]
