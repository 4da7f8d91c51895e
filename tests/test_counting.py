import tiktoken

from hyco2.counting import cl100k, count_cl100k


def test_offline_encoding_matches_cl100k_ids():
    enc = cl100k()
    assert enc.encode("hello world") == [15339, 1917]  # cl100k_base ids, offline
    assert count_cl100k("The Normans were in Normandy.") == len(enc.encode("The Normans were in Normandy."))


def test_special_token_text_is_counted_as_text():
    assert count_cl100k("<|endoftext|>") > 1
    assert isinstance(cl100k(), tiktoken.Encoding)
