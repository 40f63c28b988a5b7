"""Regression tests for the breaker's findings on fine-tuning pool selection (issue 15):
tiny pools, no models loaded."""

from __future__ import annotations

import numpy as np
import pytest

from corpus_assets.steps.sft.config import SftDedup
from corpus_assets.steps.sft.dedup import char_shingles32, deduplicate
from corpus_assets.steps.dedup.minhash import MinHasher

_HEADER = ("You are an assistant with access to the following tools: Calendar(date) returns events; "
           "Weather(city) returns the forecast; Calculator(expr) evaluates arithmetic. ") * 2


def _templated(n: int) -> list[str]:
    return [_HEADER + f"Question {i}: what is {i} times {i * 7 % 101}? Answer: {i * (i * 7 % 101)}" for i in range(n)]


# --------------------------------------------------------------------------- f13 near dedup


@pytest.mark.parametrize("quality", ["descending", "ascending", "random"])
def test_near_dedup_keeps_one_of_a_near_identical_group_whatever_the_order(quality):
    texts = _templated(60)
    q = {"descending": np.linspace(1, 0, 60), "ascending": np.linspace(0, 1, 60),
         "random": np.random.default_rng(0).random(60)}[quality]
    result = deduplicate(texts, q, SftDedup())
    # all 60 are >= 0.8 similar to each other: exactly the best-quality one stays
    assert int(result.keep.sum()) == 1 and int(np.flatnonzero(result.keep)[0]) == int(np.argmax(q))
    assert result.removed["near_duplicate"] == 59


def test_no_two_kept_samples_are_near_duplicates():
    rng = np.random.default_rng(1)
    texts = _templated(30) + [f"Unrelated sample {i}: " + " ".join(rng.choice(list("abcdefgh"), 80)) for i in range(30)]
    order = rng.permutation(len(texts))
    texts = [texts[i] for i in order]
    cfg = SftDedup()
    result = deduplicate(texts, rng.random(len(texts)), cfg)
    kept = np.flatnonzero(result.keep)
    hasher = MinHasher(__import__("corpus_assets.steps.sft.dedup", fromlist=["preset"]).preset(cfg))
    sigs = hasher.signatures_from_shingles([char_shingles32(texts[i], cfg.ngram) for i in kept])
    for a in range(len(kept)):
        est = (sigs[a + 1:] == sigs[a]).mean(axis=1)
        assert not (est >= cfg.jaccard).any()
    # every removed one names a kept twin it is >= jaccard similar to
    for i in np.flatnonzero(~result.keep):
        assert result.keep[result.duplicate_of[i]]


# --------------------------------------------------------------------------- stage-level pools (fake models)

import dataclasses  # noqa: E402
import json  # noqa: E402


class _LangId:
    def predict(self, text):
        return "en", 0.99


class _Lm:
    folder, backend, info = "fake", "fake", {}

    def document_perplexity(self, text):
        return 100.0 + len(text) % 50


class _Counter:
    name = "words"

    def count(self, texts):
        return [len(t.split()) for t in texts]


class _Encoder:
    model_path = "fake-encoder"

    def encode(self, texts):
        out = np.array([[1.0 + (hash(w) % 13) for w in (t.split() + ["x"] * 8)[:8]] for t in texts], np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


MODELS = (_LangId(), _Lm(), _Counter())


def _record(i: int, words: int = 12, **fields) -> str:
    body = " ".join(f"word{(i * 31 + k) % 997}x{i}" for k in range(words))
    return json.dumps({"instruction": f"Task {i}: explain {body}", "output": f"Answer {i}: {body} done.",
                       **fields}, ensure_ascii=False)


def _setup(tmp_path, datasets, recipe: dict):
    from corpus_assets.config import load_config
    from corpus_assets.steps.sft.config import SftConfig, SftDataset
    from corpus_assets.steps.sft.config import parse_recipe
    from corpus_assets.storage import CorpusStore

    config = load_config()
    sft = SftConfig(datasets=tuple(SftDataset(**d) for d in datasets), embedding_cache=False)
    config = dataclasses.replace(config, sft=sft)
    recipe = parse_recipe({"filters": {"perplexity_iqr": False, "min_tokens": 1, "max_special_char_ratio": 1.0},
                           "quality": {"keep_fraction": 1.0},
                           "diversity": {"clusters": 2}, **recipe})
    return config, recipe, CorpusStore(str(tmp_path / "store"))


def _materialize(store, config, names):
    from corpus_assets import sft_stages as st

    for name in names:
        st.build_sft_samples(store, name, config)
        st.build_sft_statistics(store, name, config, models=MODELS)


def _one_pool(tmp_path, lines=None):
    from corpus_assets import sft_stages as st

    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(lines or [_record(i) for i in range(10)]) + "\n", encoding="utf-8")
    config, recipe, store = _setup(tmp_path, [{"name": "pool", "path": str(pool)}],
                                   {"name": "r", "datasets": ["pool"], "token_budget": 200})
    _materialize(store, config, ["pool"])
    return pool, config, recipe, store, st.build_sft_selection(store, recipe, config, _Encoder())


def test_selection_refuses_statistics_of_an_older_samples_version(tmp_path):
    """f03: same line count, new texts; statistics not rematerialized -> refused, naming both."""
    from corpus_assets import sft_stages as st

    pool, config, recipe, store, manifest = _one_pool(tmp_path)
    assert st.budget_respected(manifest, st.selection_tokens(store, "r", _Counter()))[0]
    pool.write_text("\n".join(_record(i, words=60) for i in range(10)) + "\n")
    st.build_sft_samples(store, "pool", config)
    with pytest.raises(ValueError, match=r"sft_statistics\[pool\] was computed from sft_samples\[pool\] version"):
        st.build_sft_selection(store, recipe, config, _Encoder())


def test_budget_check_recounts_the_written_file(tmp_path):
    """f03: the check fails when selection.jsonl's texts do not have the tokens the manifest says."""
    from corpus_assets import sft_stages as st

    pool, config, recipe, store, manifest = _one_pool(tmp_path)
    records, tokens = st.selection_tokens(store, "r", _Counter())
    assert records == manifest["samples"] > 0 and tokens == manifest["tokens_used"] <= 200

    class Doubling(_Counter):
        def count(self, texts):
            return [2 * n for n in super().count(texts)]

    ok, facts = st.budget_respected(manifest, st.selection_tokens(store, "r", Doubling()))
    assert not ok and facts["written_tokens"] == 2 * manifest["tokens_used"]


def test_selection_has_one_schema_across_datasets(tmp_path):
    """f06: datasets with different field names -> every line has OUTPUT_FIELDS, nothing else."""
    from corpus_assets import sft_stages as st

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(_record(i, source="alpaca/x") for i in range(6)) + "\n")
    b.write_text("\n".join(json.dumps({"prompt": f"Prompt {i}: say {i} things about topic{i * 7}",
                                       "completion": f"Completion {i}: " + " ".join(f"t{i}w{k}" for k in range(10))})
                           for i in range(6)) + "\n")
    config, recipe, store = _setup(tmp_path, [{"name": "a", "path": str(a)},
                                              {"name": "b", "path": str(b), "instruction_field": "prompt",
                                               "output_field": "completion", "input_field": "context",
                                               "source_field": "origin"}],
                                   {"name": "r", "datasets": ["a", "b"], "token_budget": 10_000})
    _materialize(store, config, ["a", "b"])
    manifest = st.build_sft_selection(store, recipe, config, _Encoder())
    with open(store.uri(st.selection_path("r", "selection.jsonl")), encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert len(lines) == manifest["samples"] == 12, manifest["removed_by_step"]
    assert {tuple(r) for r in lines} == {st.OUTPUT_FIELDS}
    assert {r["dataset"] for r in lines} == {"a", "b"}
    assert {r["source"] for r in lines if r["dataset"] == "b"} == {"b"}


def test_line_separators_are_escaped_in_selection_jsonl(tmp_path):
    """f14: U+2028/U+2029 inside a record never split it for splitlines()/JS readers."""
    from corpus_assets import sft_stages as st

    lines = [_record(i) for i in range(9)] + [json.dumps({"instruction": "Split\u2028here and\u2029there please",
                                                          "output": "One\u2028two\u2029three answer words"})]
    _, _, _, store, manifest = _one_pool(tmp_path, lines)
    with open(store.uri(st.selection_path("r", "selection.jsonl")), encoding="utf-8") as fh:
        text = fh.read()
    assert "\u2028" not in text and "\u2029" not in text
    rows = [json.loads(x) for x in text.splitlines()]
    assert len(rows) == manifest["samples"]
    assert any(r["output"] == "One\u2028two\u2029three answer words" for r in rows)


# --------------------------------------------------------------------------- f04 / f08 embedding cache


def _unit_encoder(dim):
    def encode(texts):
        return np.array([[float(len(t))] + [1.0] * (dim - 1) for t in texts], np.float32)
    return encode


def test_model_content_key_changes_with_the_model_files(tmp_path):
    from corpus_assets.steps.sft.embeddings import model_content_key

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"v1")
    first = model_content_key(model)
    (model / "weights.bin").write_bytes(b"v2 fine-tuned")
    assert model_content_key(model) != first and first
    assert model_content_key(tmp_path / "absent") == ""


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", "truncate"])
def test_damaged_cache_is_rebuilt(tmp_path, damage):
    from corpus_assets.steps.sft.embeddings import EmbeddingCache

    cache = EmbeddingCache(tmp_path, "enc")
    cache.embed(["a", "bb", "ccc"], _unit_encoder(4))
    data = cache.path.read_bytes()
    cache.path.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    again = EmbeddingCache(tmp_path, "enc")
    assert again.embed(["a", "bb"], _unit_encoder(4)).tolist() == [[1, 1, 1, 1], [2, 1, 1, 1]]
    assert again.misses == 2
    assert EmbeddingCache(tmp_path, "enc").embed(["a"], _unit_encoder(4)).shape == (1, 4)


def test_cache_of_another_dimension_is_rebuilt(tmp_path):
    from corpus_assets.steps.sft.embeddings import EmbeddingCache

    EmbeddingCache(tmp_path, "enc").embed(["a", "bb"], _unit_encoder(4))
    out = EmbeddingCache(tmp_path, "enc").embed(["a", "ddd"], _unit_encoder(6))
    assert out.shape == (2, 6) and out[0].tolist() == [1, 1, 1, 1, 1, 1]


def test_concurrent_writers_keep_both_additions(tmp_path):
    """Another writer saves while this one is encoding (between its load and its save):
    both writers' vectors stay in the cache."""
    from corpus_assets.steps.sft.embeddings import EmbeddingCache

    def encode_while_another_saves(texts):
        EmbeddingCache(tmp_path, "enc").embed(["a", "bb"], _unit_encoder(3))
        return _unit_encoder(3)(texts)

    EmbeddingCache(tmp_path, "enc").embed(["ccc"], encode_while_another_saves)
    third = EmbeddingCache(tmp_path, "enc")
    third.embed(["a", "bb", "ccc"], _unit_encoder(3))
    assert third.hits == 3 and third.misses == 0


# --------------------------------------------------------------------------- f01 / f10 reading


def _read(path):
    from collections import Counter

    from corpus_assets.steps.sft.config import SftDataset
    from corpus_assets.steps.sft.samples import read_samples

    removed = Counter()
    return list(read_samples(path, SftDataset("d", str(path)), 200_000, removed)), removed


def test_bom_gzip_by_magic_latin1_and_lone_surrogate(tmp_path):
    import gzip

    good = "".join(_record(i) + "\n" for i in range(4)).encode()
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + good)
    rows, removed = _read(tmp_path / "bom.jsonl")
    assert len(rows) == 4 and not removed and rows[0]["sample_id"] == "d:1"
    (tmp_path / "gz.jsonl").write_bytes(gzip.compress(good))
    rows, removed = _read(tmp_path / "gz.jsonl")
    assert len(rows) == 4 and not removed
    latin1 = json.dumps({"instruction": "Traduis: café crème", "output": "coffee with cream"},
                        ensure_ascii=False).encode("latin-1")
    surrogate = b'{"instruction": "Explain \\ud800 please", "output": "A lone surrogate half."}'
    (tmp_path / "bad.jsonl").write_bytes(good + latin1 + b"\n" + surrogate + b"\n")
    rows, removed = _read(tmp_path / "bad.jsonl")
    assert len(rows) == 4 and removed == {"invalid_utf8": 1, "invalid_unicode": 1}


# --------------------------------------------------------------------------- f02 / f05 / f07 recipes


@pytest.mark.parametrize("text,key", [
    ("seed: -1", "seed"), ("seed: 1099511627776", "seed"), ("dedup: {seed: -3}", "dedup.seed"),
    ("quality: {weight_lang: .inf}", "quality.weight_lang"), ("quality: {weight_alnum: .nan}", "quality.weight_alnum"),
    ("filters: {perplexity_iqr_k: .inf}", "filters.perplexity_iqr_k"),
    ("token_budget: 20", "duplicate key 'token_budget'"),
])
def test_hostile_recipe_values_refused_at_load_naming_the_key(tmp_path, text, key):
    from corpus_assets.steps.sft.config import SftRecipeError, load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\ndatasets: [gpteacher]\ntoken_budget: 10\n{text}\n")
    with pytest.raises(SftRecipeError, match=key.replace(".", r"\.")):
        load_recipe(path)


def test_one_bad_recipe_fails_only_its_partition(tmp_path):
    import dagster as dg

    from corpus_assets.assets.sft import build_sft_assets
    from corpus_assets.config import load_config
    from corpus_assets.steps.sft.config import SftConfig, SftRecipeError

    (tmp_path / "good.yaml").write_text("name: good\ndatasets: [gpteacher]\ntoken_budget: 10\n")
    (tmp_path / "other.yml").write_text("name: other\ndatasets: [gpteacher]\ntoken_budget: 10\n")
    (tmp_path / "bad.yaml").write_text("name: bad\ndatasets: [gpteacher]\ntoken_budget: -5\n")
    sft = SftConfig(recipes_dir=str(tmp_path))
    entries = sft.recipe_entries()
    assert set(entries) == {"good", "other", "bad"} and isinstance(entries["bad"], SftRecipeError)
    with pytest.raises(SftRecipeError, match="token_budget"):
        sft.recipes()
    assets = build_sft_assets(dataclasses.replace(load_config(), sft=sft))  # no error at definitions time
    selection = [a for a in assets if isinstance(a, dg.AssetsDefinition) and a.key.path[-1] == "sft_selection"][0]
    assert set(selection.partitions_def.get_partition_keys()) == {"good", "other", "bad"}
    from corpus_assets.resources import CorpusStoreResource, TokenizerResource

    result = dg.materialize(assets, selection=["sft_selection"], partition_key="bad", raise_on_error=False,
                            resources={"corpus_store": CorpusStoreResource(root=str(tmp_path / "store")),
                                       "tokenizer": TokenizerResource()})
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "token_budget" in str(failure.event_specific_data.error)


# --------------------------------------------------------------------------- f09 / f11 / f12 manifest


def test_empty_selection_warns_and_writes_strict_json(tmp_path, capsys):
    """f11: budget below every sample -> empty selection with a warning; manifest has null, not NaN."""
    from corpus_assets import sft_stages as st

    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join(_record(i) for i in range(6)) + "\n")
    config, recipe, store = _setup(tmp_path, [{"name": "pool", "path": str(pool)}],
                                   {"name": "r", "datasets": ["pool"], "token_budget": 1})
    _materialize(store, config, ["pool"])
    manifest = st.build_sft_selection(store, recipe, config, _Encoder())
    assert manifest["samples"] == 0 and "none fits the token budget 1" in manifest["warnings"][0]
    with open(store.uri(st.selection_path("r")), encoding="utf-8") as fh:
        written = json.loads(fh.read(), parse_constant=lambda c: pytest.fail(f"bare {c} in manifest.json"))
    assert written["diversity"]["selection"]["mean_nearest_distance"] is None
    from corpus_assets.sft_demo import print_manifest

    print_manifest(written)  # the demo prints such a manifest without crashing on its nulls
    assert "WARNING: the selection is empty" in capsys.readouterr().out


def test_funnel_read_step_counts_every_line(tmp_path):
    """f12: the read step starts at the files' lines; conservation covers it."""
    from corpus_assets import sft_stages as st

    lines = [_record(i) for i in range(8)] + ["{broken", "", json.dumps({"instruction": "x"})]
    _, _, _, store, manifest = _one_pool(tmp_path, lines)
    read = manifest["funnel"][0]
    assert read["step"] == "read" and read["samples_in"] == 11 and read["samples_out"] == 8
    assert manifest["removed_by_step"]["read"] == {"blank_line": 1, "malformed_json": 1, "missing_field": 1}
    ok, facts = st.conservation(manifest)
    assert ok and facts["gaps"]["read"] == 0


def test_dataset_order_in_the_recipe_does_not_change_the_selection(tmp_path):
    """f09: the same two datasets listed in either order -> the same ids (a cross-dataset duplicate
    goes to the same dataset)."""
    from corpus_assets import sft_stages as st

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(_record(i) for i in range(5)) + "\n")
    b.write_text("\n".join(_record(i) for i in range(3, 8)) + "\n")  # records 3 and 4 in both
    ids = []
    for order in (["a", "b"], ["b", "a"]):
        config, recipe, store = _setup(tmp_path / "-".join(order), [{"name": "a", "path": str(a)},
                                                                    {"name": "b", "path": str(b)}],
                                       {"name": "r", "datasets": order, "token_budget": 10_000})
        _materialize(store, config, ["a", "b"])
        st.build_sft_selection(store, recipe, config, _Encoder())
        ids.append(sorted(r["sample_id"] for r in store.iter_rows(st.selection_path("r", "selected.parquet"))))
    assert ids[0] == ids[1] and len(ids[0]) == 8


def test_datasets_counted_with_different_tokenizers_are_refused(tmp_path):
    """f03 (same gap): one budget over token counts of two tokenizers is refused."""
    from corpus_assets import sft_stages as st

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(_record(i) for i in range(4)) + "\n")
    b.write_text("\n".join(_record(i) for i in range(4, 8)) + "\n")
    config, recipe, store = _setup(tmp_path, [{"name": "a", "path": str(a)}, {"name": "b", "path": str(b)}],
                                   {"name": "r", "datasets": ["a", "b"], "token_budget": 1000})

    class Other(_Counter):
        name = "other"

    _materialize(store, config, ["a"])
    st.build_sft_samples(store, "b", config)
    st.build_sft_statistics(store, "b", config, models=(_LangId(), _Lm(), Other()))
    with pytest.raises(ValueError, match="different tokenizers"):
        st.build_sft_selection(store, recipe, config, _Encoder())
