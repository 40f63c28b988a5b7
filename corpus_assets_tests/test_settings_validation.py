"""The settings file is validated completely when it is loaded: types, ranges and paths,
each error naming the file and the dotted key, so that no setting can silently empty a
corpus or fail only later inside a partition run (issue 10, item 15)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import pydantic
import pytest
from pydantic import Field

from corpus_assets import config as config_module
from corpus_assets.config import ConfigError, PipelineConfig, fingerprint, load_config


def _load(tmp_path: Path, text: str, name: str = "bad_settings.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path, load_config(path)


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad_settings.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message, message  # every error names the file
    return message


@pytest.mark.parametrize(
    "text, key",
    [
        # a string where a list belongs was read as the set {'e', 'n'}: nothing kept
        ("language_id:\n  languages: en\n", "language_id.languages"),
        ("html_decode:\n  max_body_bytes: -1\n", "html_decode.max_body_bytes"),
        ("quality_thresholds:\n  dup_line_frac: -0.1\n", "quality_thresholds.dup_line_frac"),
        ("quality_thresholds:\n  max_line_correction_words_frac: -1\n",
         "quality_thresholds.max_line_correction_words_frac"),
        # quoted 'no' is a string, not false: it left the pre-screen on
        ("language_prescreen:\n  enabled: 'no'\n", "language_prescreen.enabled"),
        ("num_shards: four\n", "num_shards"),
        ("url_filter:\n  - blocklist_dir\n", "url_filter"),
        ("language_id:\n  min_score: 1.5\n", "language_id.min_score"),
        ("url_filter:\n  blocklist_dir: no/such/folder\n", "url_filter.blocklist_dir"),
        ("language_id:\n  model_path: no_such_model.bin\n", "language_id.model_path"),
        ("url_filter:\n  soft_words_path: missing.txt\n", "url_filter.soft_words_path"),
        ("url_filter:\n  blocklist_dir: ''\n", "url_filter.blocklist_dir"),  # "" is not "off"
        ("language_prescreen:\n  chunk_words: 2.5\n", "language_prescreen.chunk_words"),
        ("dedup:\n  exact_drop_fraction: 2\n", "dedup.exact_drop_fraction"),
        ("language_prescreen:\n  chunk_word: 30\n", "language_prescreen.chunk_word"),
        ("html_guard:\n  max_tags: 0\n", "html_guard.max_tags"),
        ("extraction:\n  favor_recall: true\n", "extraction"),  # with favor_precision (default on)
        ("quality_signals:\n  stop_words: [a, b]\n", "quality_signals.stop_words"),
    ],
)
def test_bad_setting_names_file_and_key(tmp_path, text, key):
    message = _error(tmp_path, text)
    assert f": {key}: " in message, message


def test_file_that_is_not_a_mapping_names_the_file(tmp_path):
    message = _error(tmp_path, "hello\n")
    assert "mapping of sections" in message and "'h'" not in message, message


def test_broken_yaml_names_the_file(tmp_path):
    assert "YAML" in _error(tmp_path, "language_id: [\n")


def test_every_error_is_reported_at_once(tmp_path):
    message = _error(tmp_path, "num_shards: 0\nlanguage_id:\n  min_score: -1\nfoo: 1\n")
    for key in ("num_shards", "language_id.min_score", "foo"):
        assert f": {key}: " in message, message


def test_num_shards_env_var_is_validated(tmp_path, monkeypatch):
    path = tmp_path / "ok.yaml"
    path.write_text("num_shards: 4\n")
    monkeypatch.setenv("CORPUS_NUM_SHARDS", "four")
    with pytest.raises(ConfigError, match="CORPUS_NUM_SHARDS='four'") as info:
        load_config(path)
    assert str(path) in str(info.value)
    monkeypatch.setenv("CORPUS_NUM_SHARDS", "0")
    with pytest.raises(ConfigError, match="CORPUS_NUM_SHARDS"):
        load_config(path)
    monkeypatch.setenv("CORPUS_NUM_SHARDS", "7")
    assert load_config(path).num_shards == 7


def test_good_values_load_as_before(tmp_path):
    (tmp_path / "words.txt").write_text("casino\n")
    (tmp_path / "ut1").mkdir()
    path, config = _load(tmp_path, (
        "num_shards: 3\n"
        "language_id:\n  languages: [en, de]\n  min_score: 1\n"
        "language_prescreen:\n  enabled: false\n"
        "url_filter:\n  blocklist_dir: ut1\n  blocklist_categories: []\n  soft_words_path: words.txt\n"
        "  strict_words_path: ''\n"
        "quality_signals:\n"
        "quality_thresholds:\n  min_words: null\n"
    ))
    assert config.num_shards == 3
    assert config.language_id.languages == ("en", "de")
    assert config.language_id.min_score == 1.0
    assert config.language_prescreen.enabled is False
    # relative paths resolve against the file's folder; "" stays "off"
    assert config.url_filter.blocklist_dir == str((tmp_path / "ut1").resolve())
    assert config.url_filter.soft_words_path == str((tmp_path / "words.txt").resolve())
    assert config.url_filter.strict_words_path == ""
    assert config.quality_thresholds.min_words is None
    assert config.source_file == str(path)
    hash(config.language_id)  # still frozen and hashable: lists became tuples


def test_defaults_load_to_the_dataclass_defaults_so_fingerprints_are_stable():
    """Validation changes no value of the bundled file: the code versions of every asset
    stay what they were for unchanged settings."""
    loaded = load_config(config_module.DEFAULT_CONFIG_FILE)
    defaults = PipelineConfig()
    for f in dataclasses.fields(PipelineConfig):
        if f.name == "source_file":
            continue
        assert fingerprint(getattr(loaded, f.name)) == fingerprint(getattr(defaults, f.name)), f.name


# A section as another developer might add it (module level: annotations are resolved
# from the module's names).
@dataclasses.dataclass(frozen=True)
class StepErrorsConfig:
    max_error_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    note: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ExtendedConfig(PipelineConfig):
    step_errors: StepErrorsConfig = dataclasses.field(default_factory=StepErrorsConfig)


def test_a_section_added_later_is_validated_with_no_loader_code(tmp_path, monkeypatch):
    """The loader is generic over PipelineConfig's fields: a new settings dataclass with
    ranges declared on its fields is checked as soon as it is a field."""

    monkeypatch.setattr(config_module, "PipelineConfig", ExtendedConfig)
    monkeypatch.setattr(config_module, "_VALIDATOR", pydantic.TypeAdapter(ExtendedConfig))
    message = _error(tmp_path, "step_errors:\n  max_error_share: 1.5\n  nope: 1\n")
    assert ": step_errors.max_error_share: " in message and ": step_errors.nope: " in message
    _, config = _load(tmp_path, "step_errors:\n  max_error_share: 0.5\n", name="ok.yaml")
    assert config.step_errors == StepErrorsConfig(max_error_share=0.5)


def test_missing_blocklist_category_folder_fails_at_load(tmp_path):
    (tmp_path / "ut1" / "gambling").mkdir(parents=True)
    message = _error(tmp_path, "url_filter:\n  blocklist_dir: ut1\n  blocklist_categories: [gambling, phishing]\n")
    assert ": url_filter.blocklist_categories: " in message and "phishing" in message, message


# ---- hostile settings files (break-it round on the loader) ----


@pytest.mark.parametrize("text, key", [
    ("num_shards: 4\nnum_shards: 8\n", "num_shards"),
    ("dedup:\n  exact_mode: cut\n  exact_mode: mask\n", "dedup.exact_mode"),
])
def test_duplicate_keys_are_refused_naming_the_key(tmp_path, text, key):
    message = _error(tmp_path, text)
    assert "duplicate" in message and key.split(".")[-1] in message, message


@pytest.mark.parametrize("text", [
    "a: &x [1, 2]\nb: *x\n",
    "x: &a [1]\ny: &b [*a, *a, *a]\nz: [*b, *b, *b]\n",
])
def test_yaml_anchors_and_aliases_are_refused(tmp_path, text):
    assert "anchors and aliases are not allowed" in _error(tmp_path, text)


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    # Eight levels of nine aliases each: 9**8 (43 million) strings once expanded. The
    # loader must refuse the first anchor, long before anything expands.
    lines = ["language_id:", '  l0: &a0 ["en","en","en","en","en","en","en","en","en"]']
    for level in range(1, 9):
        refs = ",".join(f"*a{level - 1}" for _ in range(9))
        lines.append(f"  l{level}: &a{level} [{refs}]")
    lines.append("  languages: *a8")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_config(bomb)


def test_num_shards_has_an_upper_bound(tmp_path, monkeypatch):
    assert ": num_shards: " in _error(tmp_path, "num_shards: 99999999999999999999999\n")
    path = tmp_path / "ok.yaml"
    path.write_text("num_shards: 4\n")
    monkeypatch.setenv("CORPUS_NUM_SHARDS", "99999999999999999999999")
    with pytest.raises(ConfigError, match="num_shards"):
        load_config(path)
    monkeypatch.setenv("CORPUS_NUM_SHARDS", "9" * 5000)
    with pytest.raises(ConfigError, match="CORPUS_NUM_SHARDS"):
        load_config(path)


@pytest.mark.parametrize("text, key", [
    ("language_id:\n  languages: ['english', '', 'EN', 'x y']\n", "language_id.languages"),
    ("language_id:\n  languages: ['']\n", "language_id.languages"),
    ("html_decode:\n  html_content_types: []\n", "html_decode.html_content_types"),
    ("html_decode:\n  html_content_types: ['']\n", "html_decode.html_content_types"),
    ("dedup:\n  exact_mode: CUT\n", "dedup.exact_mode"),
    ("dedup:\n  exact_method: fast\n", "dedup.exact_method"),
    ("dedup:\n  minhash_preset: nope\n", "dedup.minhash_preset"),
    ("dedup:\n  verify_min_jaccard: 2\n", "dedup.verify_min_jaccard"),
    ("step_errors:\n  max_error_share: 2\n", "step_errors.max_error_share"),
    ("step_errors:\n  min_errors: -1\n", "step_errors.min_errors"),
    ("num_shards: 1:20\n", "num_shards"),  # YAML 1.1 sexagesimal: 80
    ("num_shards: 0x10\n", "num_shards"),
    ("num_shards: 1_0\n", "num_shards"),
    ("num_shards: 010\n", "num_shards"),  # YAML 1.1 octal: 8
])
def test_bad_values_name_the_dotted_key(tmp_path, text, key):
    message = _error(tmp_path, text)
    assert f": {key}: " in message or f": {key}.0: " in message, message  # .0: the list item


def test_languages_check_reports_which_codes(tmp_path):
    message = _error(tmp_path, "language_id:\n  languages: ['english', en, 'EN']\n")
    assert "english" in message and "'EN'" in message, message
    _, config = _load(tmp_path, "language_id:\n  languages: [en, zh, yue, als]\n", name="ok.yaml")
    assert config.language_id.languages == ("en", "zh", "yue", "als")


@pytest.mark.parametrize("text", [
    "num_shards: " + "[" * 5000 + "\n",
    "num_shards: " + "[" * 2000 + "]" * 2000 + "\n",
    "num_shards: " + "9" * 5000 + "\n",
    "language_id:\n  min_score: " + "9" * 5000 + "\n",
])
def test_hostile_files_are_config_errors(tmp_path, text):
    _error(tmp_path, text)


def test_a_folder_as_settings_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_decimal_ints_and_floats_still_load(tmp_path):
    _, config = _load(tmp_path, "num_shards: 12\nlanguage_id:\n  min_score: 0.5\ndedup:\n  exact_min_tokens: +50\n")
    assert config.num_shards == 12 and config.dedup.exact_min_tokens == 50
