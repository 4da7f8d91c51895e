import tiktoken

from hyco2.counting import cl100k, count_cl100k, count_cl100k_batch


def test_offline_encoding_matches_cl100k_ids():
    enc = cl100k()
    assert enc.encode("hello world") == [15339, 1917]  # cl100k_base ids, offline
    assert count_cl100k("The Normans were in Normandy.") == len(enc.encode("The Normans were in Normandy."))


def test_special_token_text_is_counted_as_text():
    assert count_cl100k("<|endoftext|>") > 1
    assert isinstance(cl100k(), tiktoken.Encoding)


def test_batch_counts_equal_one_by_one():
    texts = ["The Normans were in Normandy.", "<|endoftext|> as text", "", "Ünïcödé, 1066 — ok"]
    assert count_cl100k_batch(texts) == [count_cl100k(t) for t in texts]


def test_large_batches_are_counted_in_slices_and_kept_in_order():
    texts = [f"paragraph {i}: " + "word " * (i % 17) + "<|endoftext|>" * (i % 3) for i in range(101)]
    assert count_cl100k_batch(texts) == [count_cl100k(t) for t in texts]
    assert count_cl100k_batch(texts) == [len(cl100k().encode(t, disallowed_special=())) for t in texts]
