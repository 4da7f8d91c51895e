import pytest

from hyco2.errors import EmptyInputError, InvalidTextError
from hyco2.text import as_text


def test_plain_text_passes_through():
    assert as_text("Hello, wörld\n") == "Hello, wörld\n"


def test_utf8_bytes_and_bom_are_decoded():
    assert as_text("Grüße".encode()) == "Grüße"
    assert as_text(b"\xef\xbb\xbfabc") == "abc"


@pytest.mark.parametrize("value", [None, "", "   \n\t"])
def test_empty_is_refused(value):
    with pytest.raises(EmptyInputError, match="empty|missing"):
        as_text(value)


def test_wrong_encoding_says_which_byte():
    with pytest.raises(InvalidTextError, match="not valid UTF-8.*byte 3"):
        as_text("café".encode("latin-1"))


def test_binary_content_is_refused():
    with pytest.raises(InvalidTextError, match="NUL"):
        as_text("abc\x00def")
    with pytest.raises(InvalidTextError, match="control characters"):
        as_text("\x01\x02\x03\x04 some text")


def test_non_text_type_is_refused():
    with pytest.raises(InvalidTextError, match="must be text"):
        as_text(42)  # type: ignore[arg-type]
