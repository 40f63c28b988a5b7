"""The ``llm`` annotator against a chat-completions server on loopback that misbehaves on
purpose: 429 and 503 before answering, replies that are not JSON, labels outside the
taxonomy, missing ids, a reply slower than the timeout. Every answer is cached, so a
second pass sends nothing; the API key never shows in what the annotator reports."""

from __future__ import annotations

import json

import pytest

from corpus_assets.steps.domains.annotator import INVALID, LlmAnnotator, cache_key
from corpus_assets_tests.domains_llm_server import DOMAINS, SECRET, run_server


@pytest.fixture()
def server():
    with run_server() as (url, script):
        yield url, script



def annotator(url, **kw):
    sleeps = []
    defaults = dict(api_key=SECRET, batch_size=2, timeout_s=0.3, max_retries=3, backoff_s=0.01, sleep=sleeps.append)
    defaults.update(kw)
    ann = LlmAnnotator(url, "test-model", DOMAINS, **defaults)
    return ann, sleeps


def test_labels_are_validated_and_cached(server):
    url, script = server
    ann, _ = annotator(url)
    texts = ["a sports match", "a food recipe", "alien visitors", "weather today"]
    labels = ann.label_documents(texts)
    assert labels == ["sports", "food", None, "none"]
    assert ann.stats.labelled == 3 and ann.stats.invalid == 1
    assert len(script.requests) == 2  # two batches of two
    assert script.requests[0]["model"] == "test-model" and script.requests[0]["temperature"] == 0
    assert all(a == f"Bearer {SECRET}" for a in script.auth)
    # The invalid answer is cached as invalid: a re-run asks nothing and trusts nothing.
    assert ann.cache[cache_key("alien visitors", "v1", "test-model", "doc")] == INVALID
    again, _ = annotator(url, cache=dict(ann.cache))
    assert again.label_documents(texts) == labels
    assert again.stats.cached == 4 and len(script.requests) == 2
    # A new prompt version or model is a different key: asked again.
    other, _ = annotator(url, cache=dict(ann.cache), prompt_version="v2")
    other.label_documents(texts[:1])
    assert len(script.requests) == 3


def test_retries_429_and_5xx_with_backoff(server):
    url, script = server
    script.steps = ["429", "503", "ok"]
    ann, sleeps = annotator(url)
    assert ann.label_roots(["sports.example", "food.example"]) == {"sports.example": "sports", "food.example": "food"}
    assert ann.stats.retries == 2 and ann.stats.errors == {"http_429": 1, "http_503": 1}
    assert sleeps[0] == 0.0  # Retry-After: 0 honoured
    assert sleeps[1] == pytest.approx(0.02)  # exponential: backoff * 2**attempt


def test_gives_up_after_max_retries_and_counts_the_inputs(server):
    url, script = server
    script.default = "503"
    ann, sleeps = annotator(url, max_retries=2)
    assert ann.label_documents(["a sports match", "law court"]) == [None, None]
    assert ann.stats.failed == 2 and ann.stats.requests == 3 and len(sleeps) == 2
    assert not ann.cache  # a failure is not an answer: asked again next run


def test_timeouts_are_retried(server):
    url, script = server
    script.steps = ["slow"]
    ann, _ = annotator(url, timeout_s=0.2)
    assert ann.label_documents(["law court"]) == ["law"]
    assert ann.stats.errors.get("timeout") == 1 and ann.stats.retries == 1


def test_bad_json_and_missing_ids_are_counted_not_trusted(server):
    url, script = server
    script.steps = ["bad_json", "drop_one"]
    ann, _ = annotator(url)
    assert ann.label_documents(["a sports match", "law court"]) == [None, None]
    assert ann.stats.bad_json == 1 and ann.stats.missing == 2
    assert ann.label_documents(["a sports match", "law court"]) == [None, "law"]
    assert ann.stats.missing == 3 and ann.stats.labelled == 1


def test_unreachable_endpoint_is_a_counted_failure():
    ann, _ = annotator("http://127.0.0.1:9/v1", max_retries=1)
    assert ann.label_documents(["x"]) == [None]
    assert ann.stats.failed == 1 and ("connection" in ann.stats.errors or "timeout" in ann.stats.errors)


def test_the_key_is_in_no_report(server):
    url, script = server
    script.default = "503"
    ann, _ = annotator(url, max_retries=0)
    ann.label_documents(["x"])
    assert SECRET not in repr(ann) and SECRET not in json.dumps(ann.stats.to_dict())


# -- hostile replies (found by a tester) ------------------------------------------------

def test_a_null_label_is_invalid_and_not_cached_as_an_answer(server):
    url, script = server
    script.steps = ["null_label"]
    ann, _ = annotator(url)
    # null is not "none": no DoNI seeds out of it, and a later good reply is asked for
    assert ann.label_documents(["a sports match", "weather today"]) == [None, None]
    assert ann.stats.invalid == 2 and ann.stats.labelled == 0
    assert "none" not in ann.cache.values() and not ann.new_answers
    assert ann.label_documents(["a sports match", "weather today"]) == ["sports", "none"]


def test_a_reply_answering_one_id_twice_differently_is_invalid_for_that_id(server):
    url, script = server
    script.steps = ["dup_id"]
    ann, _ = annotator(url)
    assert ann.label_documents(["a sports match", "food stall"]) == [None, "food"]
    assert ann.stats.invalid == 1


def test_labels_in_another_case_map_back_to_the_taxonomy(server):
    url, script = server
    script.steps = ["upper"]
    ann, _ = annotator(url)
    assert ann.label_documents(["a sports match", "weather today"]) == ["sports", "none"]
    assert ann.stats.invalid == 0


@pytest.mark.parametrize("action", ["bad_status", "incomplete"])
def test_malformed_http_replies_are_retried_connection_errors(server, action):
    url, script = server
    script.steps = [action]
    ann, _ = annotator(url)
    assert ann.label_documents(["law court"]) == ["law"]
    assert ann.stats.errors.get("connection") == 1 and ann.stats.retries == 1


def test_a_redirect_is_not_followed_and_the_key_stays_home(server):
    url, script = server
    script.default = "redirect"
    ann, _ = annotator(url)
    assert ann.label_documents(["law court"]) == [None]
    assert ann.stats.failed == 1 and ann.stats.errors == {"redirect_302": 1}
    assert ann.stats.requests == 1  # not retried either: the server said go elsewhere
    assert "redirect" in ann.stats.last_error and SECRET not in ann.stats.last_error


def test_a_trickling_reply_hits_the_total_deadline(server):
    import time
    url, script = server
    script.steps = ["trickle"]
    ann, _ = annotator(url, timeout_s=1.0, deadline_s=0.5, max_retries=1)
    started = time.monotonic()
    assert ann.label_documents(["law court"]) == ["law"]
    assert time.monotonic() - started < 3.0
    assert ann.stats.errors.get("deadline") == 1


def test_a_reply_over_the_size_cap_is_not_read_whole(server):
    url, script = server
    script.steps = ["huge"]
    ann, _ = annotator(url, max_reply_bytes=100_000, max_retries=1)
    assert ann.label_documents(["law court"]) == ["law"]
    assert ann.stats.errors.get("too_large") == 1


def test_consecutive_failed_batches_stop_the_labelling(server):
    from corpus_assets.steps.domains.annotator import LlmUnavailable
    url, script = server
    script.default = "503"
    ann, _ = annotator(url, max_retries=0, batch_size=1, max_failed_batches=2)
    with pytest.raises(LlmUnavailable, match="2 batches in a row"):
        ann.label_documents(["a", "b", "c", "d"])
    assert ann.stats.requests == 2
    assert SECRET not in str(ann.stats.last_error)
