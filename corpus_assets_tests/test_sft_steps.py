"""Fine-tuning pool selection steps (docs/sft.md): statistics on hand-checked strings, each
filter's reason, dedup on planted duplicates, k-center on a toy set, the token budget, seeds,
bad input. No models are loaded here (the statistics' model columns are given)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from corpus_assets.steps.sft import diversity as div
from corpus_assets.steps.sft.config import SftDataset, SftDedup, SftFilters, SftQuality, SftRecipeError, parse_recipe
from corpus_assets.steps.sft.dedup import deduplicate
from corpus_assets.steps.sft.filters import apply_filters, perplexity_bounds
from corpus_assets.steps.sft.quality import percentile_rank, quality_scores
from corpus_assets.steps.sft.samples import parse_record, read_samples, sample_text
from corpus_assets.steps.sft.statistics import (SampleStatistics, alnum_ratio, char_rep_ratio, ir_ratio,
                                                special_char_ratio, text_len, word_rep_ratio, words_of)


# --------------------------------------------------------------------------- statistics

def test_statistics_on_hand_checked_strings():
    assert text_len("abc") == 3 and text_len("") == 0
    assert alnum_ratio("ab1 !") == pytest.approx(3 / 5)
    assert alnum_ratio("") == 0.0
    # "1", " " and "!" are special; letters (accented too) are not
    assert special_char_ratio("ab1 !") == pytest.approx(3 / 5)
    assert special_char_ratio("été") == 0.0
    assert special_char_ratio("a—…") == pytest.approx(2 / 3)
    # char 2-grams: "aaaa" -> aa x3 (all repeated); "abcd" -> none repeated; "abab" -> ab x2, ba x1
    assert char_rep_ratio("aaaa", 2) == 1.0
    assert char_rep_ratio("abcd", 2) == 0.0
    assert char_rep_ratio("abab", 2) == pytest.approx(2 / 3)
    assert char_rep_ratio("a", 10) == 0.0
    # word 2-grams of a b a b: "a b" x2 (repeated), "b a" x1
    assert words_of("A, b. a b!") == ["a", "b", "a", "b"]
    assert word_rep_ratio("A, b. a b!", 2) == pytest.approx(2 / 3)
    assert word_rep_ratio("one two three", 2) == 0.0
    assert ir_ratio("ab", "c", "dddd") == pytest.approx(3 / 4)
    assert ir_ratio("ab", "", "") == 2.0  # an empty output divides by 1, never by 0


def test_sample_statistics_columns_without_models():
    sample = {"instruction": "Say hi", "input": "", "output": "Hi there", "text": sample_text("Say hi", "", "Hi there")}
    row = SampleStatistics().rows([sample])[0]
    assert sample["text"] == "Say hi\n\nHi there"
    assert row["text_len"] == 16 and row["response_len"] == 8
    assert row["lang"] == "" and math.isnan(row["perplexity"]) and row["token_count"] == 0


# --------------------------------------------------------------------------- filters

def _stat(**over):
    base = {"text_len": 100, "alnum_ratio": 0.8, "char_rep_ratio": 0.1, "word_rep_ratio": 0.0,
            "special_char_ratio": 0.2, "lang": "en", "lang_score": 0.9, "perplexity": 100.0, "token_count": 50,
            "ir_ratio": 1.0, "response_len": 60}
    base.update(over)
    return base


@pytest.mark.parametrize("over,reason", [
    ({"text_len": 5}, "text_too_short"), ({"text_len": 30_000}, "text_too_long"),
    ({"alnum_ratio": 0.1}, "low_alnum_ratio"), ({"char_rep_ratio": 0.9}, "high_char_rep_ratio"),
    ({"word_rep_ratio": 0.9}, "high_word_rep_ratio"), ({"special_char_ratio": 0.6}, "high_special_char_ratio"),
    ({"lang": "de"}, "language_not_selected"), ({"lang_score": 0.69}, "low_lang_score"),
    ({"token_count": 3}, "too_few_tokens"), ({"token_count": 5000}, "too_many_tokens"),
    ({"ir_ratio": 50.0}, "ir_ratio_out_of_range"), ({"perplexity": float("nan")}, "perplexity_not_finite"),
])
def test_each_filter_counts_its_reason(over, reason):
    stats = [_stat(), _stat(**over), _stat()]
    result = apply_filters(stats, SftFilters(perplexity_iqr=True, perplexity_iqr_k=10.0))
    assert result.removed == Counter({reason: 1})
    assert result.reasons[1] == reason and result.kept == 2


def test_first_failing_filter_names_the_removal():
    result = apply_filters([_stat(text_len=5, lang="de")], SftFilters(perplexity_iqr=False))
    assert result.removed == Counter({"text_too_short": 1})


def test_perplexity_inter_quartile_range():
    stats = [_stat(perplexity=float(p)) for p in range(1, 9)]
    result = apply_filters(stats, SftFilters())
    # numpy's linear quantiles of 1..8: q1 = 2.75, q3 = 6.25
    assert result.perplexity["q1"] == pytest.approx(2.75) and result.perplexity["q3"] == pytest.approx(6.25)
    assert result.reasons == ["perplexity_below_iqr"] * 2 + [None] * 4 + ["perplexity_above_iqr"] * 2
    assert len(stats) == result.kept + sum(result.removed.values())
    low, high, _, _ = perplexity_bounds(list(range(1, 9)), k=1.0)
    assert (low, high) == pytest.approx((2.75 - 3.5, 6.25 + 3.5))
    # the bounds come from samples that passed the other filters only
    skewed = [_stat(perplexity=1e6, lang="de")] * 5 + stats
    assert apply_filters(skewed, SftFilters()).perplexity["q3"] == pytest.approx(6.25)


# --------------------------------------------------------------------------- dedup

BASE = ("The quick brown fox jumps over the lazy dog while the farmer watches from the porch and "
        "drinks his morning coffee, thinking about the harvest that will come in the autumn months.")


def test_dedup_on_planted_duplicates():
    texts = [
        BASE,                                            # 0 kept (best of its groups)
        BASE.upper().replace(",", " ;"),                 # 1 exact after normalization
        BASE.replace("coffee", "tea"),                   # 2 near duplicate
        "Completely different text about databases, indexes and query planners in PostgreSQL.",  # 3 kept
        "Completely different text about databases, indexes and query planners in PostgreSQL.",  # 4 exact
    ]
    quality = [0.9, 0.5, 0.8, 0.4, 0.7]
    result = deduplicate(texts, quality, SftDedup())
    assert result.reasons == [None, "exact_duplicate", "near_duplicate", "exact_duplicate", None]
    # in the exact group {3, 4} the better quality (4) stays
    assert result.duplicate_of.tolist() == [-1, 0, 0, 4, -1]
    assert result.removed == Counter({"exact_duplicate": 2, "near_duplicate": 1})
    assert result.keep.sum() + sum(result.removed.values()) == len(texts)


def test_near_dedup_does_not_chain():
    # a ~ b and b ~ c but a !~ c: greedy keeping removes b only (connected components would
    # remove c as well)
    words = [f"w{i}" for i in range(60)]
    a = " ".join(words)
    b = " ".join(words[:50] + [f"x{i}" for i in range(10)])
    c = " ".join(words[:40] + [f"x{i}" for i in range(10)] + [f"y{i}" for i in range(10)])
    from corpus_assets.steps.dedup.minhash import jaccard
    from corpus_assets.steps.sft.dedup import char_shingles32
    sa, sb, sc = (char_shingles32(t) for t in (a, b, c))
    assert jaccard(sa, sb) > 0.7 and jaccard(sb, sc) > 0.7 and jaccard(sa, sc) < 0.7
    result = deduplicate([a, b, c], [0.9, 0.8, 0.7], SftDedup(num_perm=256, bands=64))
    assert result.reasons == [None, "near_duplicate", None]


def test_dedup_off():
    result = deduplicate([BASE, BASE], [0.5, 0.5], SftDedup(exact=False, near=False))
    assert result.keep.all()


# --------------------------------------------------------------------------- selection

def test_k_center_greedy_toy_known_answer():
    points = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [11, 0]], dtype=float)
    quality = [1.0, 0.0, 0.0, 0.0, 0.0]  # the best quality starts
    # 0, then the farthest (11), then the farthest from {0, 11}: 2 (distance 2)
    assert div.k_center_greedy(points, [1] * 5, 3, quality) == [0, 4, 2]
    # a sample that does not fit is skipped: 4 costs 5 tokens, budget 3 -> 3 (10) instead
    assert div.k_center_greedy(points, [1, 1, 1, 1, 5], 3, quality) == [0, 3, 2]


def test_token_budget_is_respected():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(300, 8))
    tokens = rng.integers(1, 400, size=300)
    tokens[7] = 100_000  # larger than every budget: never chosen
    quality = rng.random(300)
    for budget in (0, 1, 500, 5_000, 20_000):
        for chosen in (div.k_center_greedy(emb, tokens, budget, quality), div.by_quality(tokens, budget, quality),
                       div.random_same_tokens(tokens, budget, seed=1)):
            assert tokens[chosen].sum() <= budget and 7 not in chosen
            assert len(set(chosen)) == len(chosen)
    chosen = div.k_center_greedy(emb, tokens, 5_000, quality)
    left = 5_000 - tokens[chosen].sum()
    assert all(tokens[i] > left for i in set(range(300)) - set(chosen))  # nothing that fits was left out
    with pytest.raises(ValueError, match="budget"):
        div.k_center_greedy(emb, tokens, -1, quality)


def test_diversity_figures():
    pool = np.array([[0, 0], [1, 0], [3, 0]], dtype=float)
    assert div.mean_nearest_distance(pool, pool[[0]]) == pytest.approx(4 / 3)
    assert div.nearest_distances(pool, pool[[0, 2]]).max() == pytest.approx(1.0)
    assert div.cluster_entropy([0, 1, 2, 3], 4) == pytest.approx(1.0)
    assert div.cluster_entropy([0, 0, 0], 4) == pytest.approx(0.0)
    assert percentile_rank([3.0, 1.0, 2.0]).tolist() == [1.0, 0.0, 0.5]


def test_quality_score_terms():
    good = _stat(lang_score=1.0, perplexity=10.0, char_rep_ratio=0.0, word_rep_ratio=0.0, response_len=600,
                 alnum_ratio=1.0)
    bad = _stat(lang_score=0.7, perplexity=900.0, char_rep_ratio=0.4, word_rep_ratio=0.1, response_len=5,
                alnum_ratio=0.5)
    q = quality_scores([good, bad], SftQuality())
    assert q[0] == pytest.approx(1.0) and q[1] < 0.5
    only_lang = SftQuality(weight_perplexity=0, weight_repetition=0, weight_response=0, weight_alnum=0)
    assert quality_scores([bad], only_lang)[0] == pytest.approx(0.7)


def _fake_pool(n=120, seed=0):
    rng = np.random.default_rng(seed)
    samples, stats = [], []
    for i in range(n):
        text = f"instruction {i} " + " ".join(f"w{rng.integers(0, 500)}" for _ in range(30))
        samples.append({"sample_id": f"d:{i}", "dataset": "d", "source": f"s{i % 3}", "instruction": text,
                        "input": "", "output": "answer", "text": text})
        stats.append(_stat(perplexity=float(rng.uniform(50, 500)), token_count=int(rng.integers(20, 200)),
                           lang_score=float(rng.uniform(0.7, 1.0))))
    return samples, stats


def _fake_embed(texts):
    out = np.array([[hash(w) % 97 for w in t.split()[:8]] for t in texts], dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_select_is_deterministic_under_a_seed_and_conserves_samples():
    from corpus_assets.sft_stages import select

    samples, stats = _fake_pool()
    recipe = parse_recipe({"name": "t", "datasets": ["d"], "token_budget": 3000, "seed": 7,
                           "diversity": {"clusters": 4}})
    a, b = select(samples, stats, recipe, _fake_embed), select(samples, stats, recipe, _fake_embed)
    assert a["chosen"] == b["chosen"] and a["diversity"] == b["diversity"]
    assert a["tokens_used"] <= 3000 < a["funnel"][-2]["tokens_out"]  # the budget binds
    for f in a["funnel"][1:]:
        assert f["samples_in"] == f["samples_out"] + sum(a["removed_by_step"].get(f["step"], {}).values())
    assert a["diversity"]["random"]["tokens"] <= a["tokens_used"]
    other = select(samples, stats, parse_recipe({**recipe.as_dict(), "seed": 8}), _fake_embed)
    assert other["chosen"] == a["chosen"]  # the seed draws only the random baseline and k-means
    assert sum(e["tokens"] for e in a["composition"]["selection"].values()) == a["tokens_used"]


# --------------------------------------------------------------------------- bad input

DATASET = SftDataset("d", "d.jsonl")


@pytest.mark.parametrize("line,reason", [
    ("", "blank_line"), ("{not json", "malformed_json"), ("[1, 2]", "not_an_object"),
    ('{"instruction": "x"}', "missing_field"), ('{"instruction": 3, "output": "y"}', "non_string_field"),
    ('{"instruction": "x", "input": null, "output": ["y"]}', "non_string_field"),
    ('{"instruction": " ", "output": "y"}', "empty_instruction"), ('{"instruction": "x", "output": "  "}', "empty_response"),
    ('{"instruction": "x", "output": "' + "y" * 50 + '"}', "record_too_long"),
])
def test_bad_records_are_counted_reasons(line, reason):
    assert parse_record(line, DATASET, max_chars=40) == (None, reason)


def test_read_samples_counts_every_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "a", "output": "b", "source": "s"}\n{bad\n\n'
                    '{"instruction": "c", "input": "i", "output": "d"}\n', encoding="utf-8")
    removed = Counter()
    rows = list(read_samples(path, DATASET, 1000, removed))
    assert [r["sample_id"] for r in rows] == ["d:1", "d:4"]
    assert [r["source"] for r in rows] == ["s", "d"]  # no source field: the dataset's name
    assert removed == Counter({"malformed_json": 1, "blank_line": 1})
    with pytest.raises(FileNotFoundError, match="d.*not found"):
        list(read_samples(tmp_path / "absent.jsonl", DATASET, 1000, Counter()))
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="cannot read"):
        list(read_samples(tmp_path / "broken.jsonl.gz", DATASET, 1000, Counter()))


@pytest.mark.parametrize("raw,key", [
    ({"name": "r", "datasets": ["d"], "token_budget": -5}, "token_budget"),
    ({"name": "r", "datasets": ["d"], "token_budget": "400000"}, "token_budget"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "dedup": {"jaccard": 1.5}}, "dedup.jaccard"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "dedup": {"bands": 7}}, "bands"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "filters": {"min_lang_score": -0.1}}, "filters.min_lang_score"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "filters": {"languages": ["xx"]}}, "filters.languages"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "quality": {"keep_fraction": 0}}, "quality.keep_fraction"),
    ({"name": "r", "datasets": ["d"], "token_budget": 10, "filtres": {}}, "filtres"),
    ({"name": "r", "datasets": [], "token_budget": 10}, "datasets"),
    ({"name": "../x", "datasets": ["d"], "token_budget": 10}, "name"),
    ("just a string", "not a mapping"),
])
def test_hostile_recipes_are_refused_naming_the_key(raw, key):
    with pytest.raises(SftRecipeError, match=key.replace(".", r"\.")):
        parse_recipe(raw, "r.yaml")


def test_bundled_demo_recipe_loads():
    from corpus_assets.steps.sft.config import SftConfig

    recipes = SftConfig().recipes()
    assert recipes["demo"].token_budget == 100_000 and recipes["demo"].dedup.num_perm == 256
    assert recipes["demo"].filters.min_lang_score == 0.7 and recipes["demo"].filters.perplexity_iqr


def test_embedding_cache_embeds_each_text_once(tmp_path):
    from corpus_assets.steps.sft.embeddings import EmbeddingCache

    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    cache = EmbeddingCache(tmp_path, "enc")
    first = cache.embed(["a", "bb", "a"], encode)
    assert calls == [["a", "bb"]] and first.tolist() == [[1, 1], [2, 1], [1, 1]]
    again = EmbeddingCache(tmp_path, "enc").embed(["bb", "ccc"], encode)
    assert calls[-1] == ["ccc"] and again.tolist() == [[2, 1], [3, 1]]
    EmbeddingCache(tmp_path, "other encoder").embed(["bb"], encode)
    assert calls[-1] == ["bb"]  # another encoder key never reads these vectors
    cache.path.write_bytes(b"damaged")
    assert EmbeddingCache(tmp_path, "enc").embed(["a"], encode).tolist() == [[1, 1]]


def test_cluster_round_robin_takes_turns_best_quality_first():
    labels = [0, 0, 0, 1, 1, 2]
    quality = [0.1, 0.9, 0.5, 0.3, 0.8, 0.2]
    # round 1: best of each cluster (1, 4, 5); round 2: 2, 3; round 3: 0
    assert div.cluster_round_robin(labels, [1] * 6, 6, quality) == [1, 4, 5, 2, 3, 0]
    assert div.cluster_round_robin(labels, [1] * 6, 4, quality) == [1, 4, 5, 2]
    # a sample that no longer fits is skipped, the cluster's next one is tried
    assert div.cluster_round_robin(labels, [1, 5, 1, 1, 1, 1], 4, quality) == [2, 4, 5, 0]


def test_select_when_the_filters_leave_nothing():
    from corpus_assets.sft_stages import select

    def no_encoder(texts):
        raise AssertionError("nothing to embed, the encoder must not be called")

    samples, stats = _fake_pool(20)
    recipe = parse_recipe({"name": "t", "datasets": ["d"], "token_budget": 100, "filters": {"languages": ["de"]}})
    out = select(samples, stats, recipe, no_encoder)
    assert out["chosen"] == [] and out["tokens_used"] == 0
    assert out["removed_by_step"]["filters"] == {"language_not_selected": 20}
    assert math.isnan(out["diversity"]["selection"]["mean_nearest_distance"])


@pytest.mark.parametrize("section,key", [
    ({"char_rep_len": 0}, "sft.char_rep_len"), ({"encoder_max_chars": -1}, "sft.encoder_max_chars"),
    ({"datasets": [{"name": "a/b", "path": "x.jsonl"}]}, "sft.datasets.0.name"),
    ({"datasets": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, "sft"),
    ({"recipes_dir": "/nonexistent/folder"}, "sft.recipes_dir"), ({"colour": 1}, "sft.colour"),
])
def test_hostile_sft_settings_name_the_key(tmp_path, section, key):
    import yaml

    from corpus_assets.config import ConfigError, load_config

    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"sft": section}))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_recipe_naming_an_unknown_dataset(tmp_path):
    from corpus_assets.steps.sft.config import SftConfig

    (tmp_path / "r.yaml").write_text("name: r\ndatasets: [nope]\ntoken_budget: 10\n")
    with pytest.raises(SftRecipeError, match="nope"):
        SftConfig(recipes_dir=str(tmp_path)).recipes()
    (tmp_path / "r.yaml").write_text("name: other\ndatasets: [gpteacher]\ntoken_budget: 10\n")
    with pytest.raises(SftRecipeError, match="differs from the file name"):
        SftConfig(recipes_dir=str(tmp_path)).recipes()
