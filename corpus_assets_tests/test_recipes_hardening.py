"""Recipes under attack (issue 17, breaker findings): settings precedence, staleness of
content-addressed inputs, allowlist and bad-words lists that cannot work, classifier
settings that cannot train. Fast: settings loads, steps on a few documents, no pipeline run."""

import logging

import pytest

from corpus_assets.config import DEFAULT_CONFIG_FILE, ConfigError, load_config


def _settings(tmp_path, text: str, name: str = "settings.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# f01: precedence --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["c4", "gpt3", "fineweb", "llama"])
def test_a_copy_of_the_defaults_naming_a_recipe_runs_that_recipe(tmp_path, monkeypatch, name, caplog):
    copy = _settings(tmp_path, DEFAULT_CONFIG_FILE.read_text().replace("recipe: refinedweb", f"recipe: {name}"))
    with caplog.at_level(logging.WARNING):
        from_copy = load_config(copy)
    monkeypatch.setenv("CORPUS_RECIPE", name)
    from_env = load_config(DEFAULT_CONFIG_FILE)
    mine = {k: v for k, v in vars(from_copy).items() if k != "source_file"}
    theirs = {k: v for k, v in vars(from_env).items() if k != "source_file"}
    assert mine == theirs
    assert "restate the default" in caplog.text and str(copy) in caplog.text


def test_an_edited_value_wins_over_the_recipe_whichever_file_it_is_in(tmp_path, monkeypatch):
    text = DEFAULT_CONFIG_FILE.read_text().replace("recipe: refinedweb", "recipe: c4")
    assert "min_score: 0.65" in text
    edited = load_config(_settings(tmp_path, text.replace("min_score: 0.65", "min_score: 0.8", 1)))
    assert edited.recipe == "c4" and edited.quality_thresholds.c4 and edited.language_id.min_score == 0.8
    # a key the recipe does not set keeps the file's value
    own = load_config(_settings(tmp_path, "recipe: c4\nquality_thresholds:\n  c4_min_sentences: 3\n", "b.yaml"))
    assert own.quality_thresholds.c4_min_sentences == 3 and own.quality_thresholds.c4


def test_env_recipe_over_a_file_written_for_another_recipe_is_refused(tmp_path, monkeypatch):
    allow = tmp_path / "allow.txt"
    allow.write_text("https://example.com/a\n")
    webtext = _settings(tmp_path, f"recipe: webtext\nurl_allowlist:\n  path: {allow}\n")
    monkeypatch.setenv("CORPUS_RECIPE", "c4")
    with pytest.raises(ConfigError, match=r"names recipe 'webtext' but \$CORPUS_RECIPE='c4'"):
        load_config(webtext)
    # a file naming the default recipe (or none) takes any $CORPUS_RECIPE
    assert load_config(_settings(tmp_path, "recipe: refinedweb\n", "r.yaml")).recipe == "c4"


# f03: content-addressed inputs -----------------------------------------------------------

def _code_versions(config) -> dict:
    from corpus_assets.definitions import build_definitions

    defs = build_definitions(config=config, corpus_root="/tmp/unused-corpus", crawl_root="/tmp/unused-crawl")
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}


def test_editing_the_allowlist_or_the_reference_corpus_marks_their_assets_stale(tmp_path):
    import gzip
    import json

    from corpus_assets import classifier_stages

    allow = tmp_path / "allow.txt"
    allow.write_text("https://example.com/a\n")
    ref = tmp_path / "ref.jsonl.gz"
    ref.write_bytes(gzip.compress(json.dumps({"text": "one reference page"}).encode() + b"\n"))
    settings = _settings(tmp_path, f"recipe: gpt3\nurl_allowlist:\n  path: {allow}\n"
                                   f"classifiers:\n  gpt3:\n    reference:\n      path: {ref}\n")
    before = load_config(settings)
    versions = _code_versions(before)
    model = classifier_stages.model_version(before, "gpt3")
    allow.write_text("https://example.com/a\nhttps://example.com/b\n")           # same path, more URLs
    ref.write_bytes(gzip.compress(json.dumps({"text": "another, longer reference page"}).encode() + b"\n"))
    after = load_config(settings)
    changed = {k for k, v in _code_versions(after).items() if versions.get(k) != v}
    assert {"rw_raw", "gpt3_quality_model", "rw_filtered"} <= changed
    assert "raw_documents" not in changed
    assert classifier_stages.model_version(after, "gpt3") != model


# f05 / f09: allowlist entries that can never match; one read per content ------------------

@pytest.mark.parametrize("body, match, problem", [
    (b"example.com/a\n", "url", "line 1 ('example.com/a'): not an http(s) URL"),
    (b"https://example.com/a\n\xe4\xfc\xff\n", "url", "line 2: not UTF-8 text"),
    (b"https://example.com/a\x00b\n", "url", "space or control character"),
    (b"# list\nhttps://example.com/a b\n", "url", "line 2 ('https://example.com/a b'): a space"),
    (b"*.example.com\n", "host", "a wildcard"),
    (b".example.com\n", "host", "a wildcard"),
    (b"user@example.com\n", "host", "user@host is not a host"),
    (b"# only comments\n\n", "url", "lists no URL"),
])
def test_allowlist_entries_that_can_never_match_are_refused_at_load(tmp_path, body, match, problem):
    allow = tmp_path / "allow.txt"
    allow.write_bytes(body)
    with pytest.raises(ConfigError, match="url_allowlist.path") as err:
        load_config(_settings(tmp_path, f"recipe: webtext\nurl_allowlist:\n  path: {allow}\n  match: {match}\n"))
    assert problem in str(err.value) and str(allow) in str(err.value)


def test_the_allowlist_is_read_once_per_content(tmp_path, monkeypatch):
    from corpus_assets.steps import url_allowlist as module

    allow = tmp_path / "allow.txt"
    allow.write_text("https://example.com/a\nhttps://example.org/\n")
    reads = []
    real = module.read_entries
    monkeypatch.setattr(module, "read_entries", lambda *a: reads.append(a) or real(*a))
    module._CACHE.clear()
    config = module.UrlAllowlistConfig(path=str(allow))
    steps = [module.UrlAllowlist(config) for _ in range(5)]
    assert len(reads) == 1 and all(s.allowed is steps[0].allowed for s in steps)
    assert steps[0].apply({"url": "http://www.example.com/a"}) is None
    allow.write_text("https://example.com/b\n")                      # new content: read again
    assert module.UrlAllowlist(module.UrlAllowlistConfig(path=str(allow))).apply({"url": "https://example.com/b"}) is None
    assert len(reads) == 2


# f04: one recipe, one store, one instance ---------------------------------------------------

def test_demo_recipe_and_make_dev_use_the_recipes_own_store_and_instance(monkeypatch):
    from corpus_assets import recipe_demo
    from corpus_assets.definitions import default_corpus_root
    from corpus_assets.recipes import recipe_homes

    for var in ("CORPUS_ROOT", "DAGSTER_HOME", "CORPUS_RECIPE"):
        monkeypatch.setenv(var, "x")   # restored after the test, whatever the code under test sets
        monkeypatch.delenv(var)
    assert default_corpus_root().endswith("/.corpus")
    recipe_demo.prepare_recipe_environment("gpt3")
    import os

    root, home = recipe_homes("gpt3", recipe_demo.REPO_ROOT)
    assert os.environ["CORPUS_ROOT"] == str(root) and os.environ["DAGSTER_HOME"] == str(home)
    assert home != recipe_demo.REPO_ROOT / ".dagster_home"
    # what `CORPUS_RECIPE=gpt3 make dev` loads when CORPUS_ROOT is not set
    monkeypatch.delenv("CORPUS_ROOT")
    assert default_corpus_root() == str(root)
    makefile = (recipe_demo.REPO_ROOT / "Makefile").read_text()
    assert ".corpus_recipes/$(CORPUS_RECIPE)/dagster_home" in makefile


# f08: C4's bad-words list -------------------------------------------------------------------

@pytest.mark.parametrize("body, problem", [
    ("scheiße\n".encode("latin-1"), "line 1 is not UTF-8 text"),
    (b"", "lists no word"),
    (b"# header only\n\n", "lists no word"),
])
def test_a_bad_words_list_that_cannot_work_is_refused_at_load(tmp_path, body, problem):
    words = tmp_path / "bad.txt"
    words.write_bytes(body)
    with pytest.raises(ConfigError, match="quality_signals.c4_bad_words_path") as err:
        load_config(_settings(tmp_path, f"recipe: c4\nquality_signals:\n  c4_bad_words_path: {words}\n"))
    assert problem in str(err.value) and str(words) in str(err.value)


def test_a_utf8_bad_words_list_loads_and_matches(tmp_path):
    from corpus_assets.steps.quality.signals import bad_words_of

    words = tmp_path / "bad.txt"
    words.write_text("# LDNOOBW-style\nscheiße\n", encoding="utf-8")
    config = load_config(_settings(tmp_path, f"recipe: c4\nquality_signals:\n  c4_bad_words_path: {words}\n"))
    assert bad_words_of(config.quality_signals).found("Das ist Scheiße, sagte er.") == ["scheiße"]


# f02: classifier settings that training cannot honour ---------------------------------------

@pytest.mark.parametrize("key, value", [
    ("seed", "4294967296"), ("seed", "99999999999999999999999"),
    ("positives_per_negative", ".inf"), ("positives_per_negative", ".nan"),
    ("regularization_c", ".inf"), ("regularization_c", "1.0e-300"),
    ("pareto_alpha", ".inf"), ("pareto_alpha", "1.0e-300"),
])
def test_classifier_settings_training_cannot_honour_are_refused_naming_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"classifiers\.gpt3\.{key}"):
        load_config(_settings(tmp_path, f"recipe: gpt3\nclassifiers:\n  gpt3:\n    {key}: {value}\n"))


def test_classifier_bounds_keep_the_usable_range(tmp_path):
    config = load_config(_settings(tmp_path, "recipe: gpt3\nclassifiers:\n  gpt3:\n    seed: 4294967295\n"
                                             "    regularization_c: 0.001\n    pareto_alpha: 0.5\n"))
    assert config.classifiers.gpt3.seed == 2**32 - 1 and config.classifiers.gpt3.pareto_alpha == 0.5


# f06: a classifier that cannot train -----------------------------------------------------

def _reference_file(tmp_path, n: int, field: str = "text"):
    import gzip
    import json

    path = tmp_path / "ref.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": i, field: f"a reference article number {i} about history"}) + "\n")
    return path


def _gpt3_config(tmp_path, ref, **extra):
    lines = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    return load_config(_settings(tmp_path, f"recipe: gpt3\nclassifiers:\n  gpt3:\n    reference:\n"
                                           f"      path: {ref}\n{lines}"))


def test_a_dump_too_small_to_train_removes_its_documents_with_a_counted_reason(tmp_path):
    from corpus_assets import classifier_stages
    from corpus_assets.steps.classifiers.common import Untrainable, iter_reference, training_set, untrainable_reason
    from corpus_assets.steps.classifiers.steps import Gpt3QualityFilter, ReferenceFilter
    from corpus_assets.storage import CorpusStore

    config = _gpt3_config(tmp_path, _reference_file(tmp_path, 50), folds=5)
    section = config.classifiers.gpt3
    crawl = [(f"d{i}", f"crawl page {i}") for i in range(3)]                # 3 pages < 5 folds
    data = training_set(crawl, iter_reference(section.reference, "classifiers.gpt3"), 5, 0, 1000, 1.0)
    reason = untrainable_reason(data, 5, section.reference, "classifiers.gpt3")
    assert reason and "3 crawl document(s)" in reason and "classifiers.gpt3.folds = 5" in reason
    # 20 folds on 6 + 6 documents: no F1 from a handful, the same counted reason
    assert untrainable_reason(training_set([(f"d{i}", "x") for i in range(6)],
                                           iter_reference(section.reference, "s"), 20, 0, 1000, 1.0),
                              20, section.reference, "classifiers.gpt3")
    # the stored report stands for the model; the scoring asset removes every document, counted
    store = CorpusStore(str(tmp_path / "corpus"))
    store.write_json(classifier_stages.report_path(classifier_stages.GPT3_MODEL, "D"),
                     {"untrainable": reason, "model_version": classifier_stages.model_version(config, "gpt3")})
    (step,) = classifier_stages.gpt3_decision_steps(store, "D", config)
    assert step.apply({"doc_id": "d0", "text": "page"}) == ("classifier_untrainable", reason)
    assert ReferenceFilter(Untrainable(config.classifiers.llama, reason)).apply({"doc_id": "d0"})[0] == \
        "classifier_untrainable"
    assert isinstance(step, Gpt3QualityFilter)


@pytest.mark.parametrize("field", ["body"])
def test_a_reference_corpus_read_as_nothing_names_the_file_and_fields(tmp_path, field):
    from corpus_assets.steps.classifiers.common import iter_reference, training_set, untrainable_reason

    ref = _reference_file(tmp_path, 50, field=field)     # the records have `body`, fields says `text`
    section = _gpt3_config(tmp_path, ref).classifiers.gpt3
    data = training_set([(f"d{i}", f"page {i}") for i in range(40)], iter_reference(section.reference, "s"),
                        5, 0, 1000, 1.0)
    with pytest.raises(ValueError, match=r"0 reference document\(s\) read from .*ref.jsonl.gz \(fields \['text'\]\)"):
        untrainable_reason(data, 5, section.reference, "classifiers.gpt3")


def test_recipe_overrides_keeps_a_restated_default_over_the_recipe(tmp_path):
    text = "recipe: c4\nquality_thresholds:\n  gopher_quality: true\n"
    assert not load_config(_settings(tmp_path, text)).quality_thresholds.gopher_quality
    mine = load_config(_settings(tmp_path, text + "recipe_overrides: [quality_thresholds.gopher_quality]\n", "o.yaml"))
    assert mine.quality_thresholds.gopher_quality and mine.quality_thresholds.c4
    with pytest.raises(ConfigError, match="recipe_overrides: 'dedup.url_dedup' is not set in this file"):
        load_config(_settings(tmp_path, text + "recipe_overrides: [dedup.url_dedup]\n", "p.yaml"))


# f11: no domain blocklist where the paper had none ------------------------------------------

@pytest.mark.parametrize("name", ["c4", "gpt3", "webtext"])
def test_recipes_without_a_domain_blocklist_in_their_paper_run_none(tmp_path, monkeypatch, name, ut1_blocklists):
    from corpus_assets.steps.url_filter import UrlFilter

    allow = tmp_path / "allow.txt"
    allow.write_text("https://example.com/a\n")
    monkeypatch.setenv("CORPUS_RECIPE", name)
    extra = f"url_allowlist:\n  path: {allow}\n" if name == "webtext" else ""
    config = load_config(_settings(tmp_path, f"url_filter:\n  blocklist_dir: {ut1_blocklists}\n{extra}"))
    assert config.url_filter.blocklist_categories == ()
    step = UrlFilter(config.url_filter)
    assert not step.domains and not step.urls
    # "C4 with our blocklist": list the categories
    monkeypatch.delenv("CORPUS_RECIPE")
    mine = load_config(_settings(tmp_path, f"recipe: {name}\n{extra}url_filter:\n  blocklist_dir: {ut1_blocklists}\n"
                                           "  blocklist_categories: [gambling]\n", "mine.yaml"))
    assert mine.url_filter.blocklist_categories == ("gambling",) and UrlFilter(mine.url_filter).domains


# f07: messages ------------------------------------------------------------------------------

def test_an_empty_recipe_key_is_reported_as_written(tmp_path):
    with pytest.raises(ConfigError, match=r"recipe: empty \(name one of .*c4.*or leave the key out for refinedweb\)"):
        load_config(_settings(tmp_path, "recipe:\n"))


def test_demo_recipe_webtext_without_a_list_prints_the_setting_not_a_traceback(monkeypatch, capsys, tmp_path):
    from corpus_assets import demo

    monkeypatch.setenv("CORPUS_RECIPE", "webtext")   # main sets it; restored after the test
    monkeypatch.setenv("CORPUS_ROOT", str(tmp_path / "corpus"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CORPUS_CRAWL_ROOT", str(tmp_path))   # no crawl is read before the settings fail
    monkeypatch.setenv("CORPUS_CONFIG", str(_settings(tmp_path, "num_shards: 2\n")))
    assert demo.main(["--recipe", "webtext"]) == 2
    err = capsys.readouterr().err
    assert "url_allowlist.path: recipe webtext needs it set" in err and "Traceback" not in err
    assert "$CORPUS_CONFIG" in err


def test_held_out_f1_is_reported_at_the_threshold_in_force():
    import numpy as np

    from corpus_assets.steps.classifiers.common import f1_at, held_out_figures

    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.6, 0.4, 0.55, 0.2, 0.1])
    held = held_out_figures(labels, scores, 0.5)
    assert f1_at(held, 0.5) == (held["f1"], 0.5)
    f1, at = f1_at(held, 0.7)
    assert at == 0.7 and f1 == held_out_figures(labels, scores, 0.7)["f1"] != held["f1"]
    assert f1_at(held, 0.73) == (held["f1"], 0.5)       # off the grid: the training figure, labelled so


def test_a_recipe_whose_classifier_is_switched_off_is_refused_at_load(tmp_path):
    text = "recipe: gpt3\nclassifiers:\n  gpt3:\n    enabled: false\nrecipe_overrides: [classifiers.gpt3.enabled]\n"
    with pytest.raises(ConfigError, match="classifiers.gpt3.enabled: recipe gpt3 needs it set"):
        load_config(_settings(tmp_path, text))
