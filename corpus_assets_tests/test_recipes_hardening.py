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
