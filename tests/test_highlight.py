"""hyco2/highlight.py: whole words, text preserved, long texts folded around kept words."""
from hyco2.highlight import highlight_words
from tests.conftest import PARAGRAPH


def test_words_add_up_to_the_text_and_kept_words_are_whole(tiny):
    r = tiny.compress(PARAGRAPH, "Who built it?", budget=10)
    pieces = highlight_words(r)
    assert "".join(t for t, _ in pieces) == PARAGRAPH
    kept_text = "".join(t for t, s in pieces if s > 0)
    for a, b in r.kept_spans:  # every kept token lies inside a kept word
        assert PARAGRAPH[a:b].strip() in kept_text
    assert all(s is None or -0.3 <= s < 0 or 0.4 <= s <= 1.0 for _, s in pieces)


def test_long_texts_fold_far_from_kept_words(tiny):
    long_text = "\n\n".join([PARAGRAPH] * 12)
    r = tiny.compress(long_text, "Who built it?", budget=6)
    pieces = highlight_words(r, max_words=50, around=2)
    folded = [t for t, s in pieces if s == 0.0]
    assert folded and all("words" in t for t in folded)
    assert all(not t.strip() for t, s in pieces if s is None)  # the unscored pieces: line breaks only
    assert sum(1 for _, s in pieces if s is not None and s > 0) >= 1
    assert len(pieces) < 0.5 * len(highlight_words(r, max_words=10**6))


def test_line_breaks_are_pieces_of_their_own_not_part_of_a_chip(tiny):
    text = PARAGRAPH + "\n\nA second paragraph follows here.\nAnd a third line."
    pieces = highlight_words(tiny.compress(text, "Who built it?", budget=10))
    assert "".join(t for t, _ in pieces) == text
    assert all("\n" not in t for t, s in pieces if s is not None)  # no scored (chip) piece holds a break
    assert "".join(t for t, s in pieces if s is None) == "\n\n\n"  # the breaks, and nothing else
