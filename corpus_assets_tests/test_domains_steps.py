"""Domain classification steps without Dagster and without the sentence encoder: the
taxonomy, the training loop on a small labelled set, the rounds' bookkeeping, the
cascade's reasons and the analyses' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from corpus_assets.config import ConfigError, load_config
from corpus_assets.steps.domains import analysis
from corpus_assets.steps.domains.classifiers import (
    REASON_FINE_REJECTED,
    REASON_NOT_RECALLED,
    CoarseSettings,
    FineHead,
    coarse_scores,
    fasttext_line,
    fine_decisions,
    load_coarse,
    model_bytes,
    train_coarse,
)
from corpus_assets.steps.domains.rounds import precision_recall, run_rounds
from corpus_assets.steps.domains.seeds import NONE_LABEL, heldout
from corpus_assets.steps.domains.taxonomy import TaxonomyError, load_taxonomy, match_host, root_of

VOCAB = {
    "sports": "match team goal league coach season player stadium score referee".split(),
    "food": "recipe oven flour sugar bake dish ingredient taste butter sauce".split(),
    "law": "court judge ruling lawyer appeal statute verdict plaintiff trial legal".split(),
}
FILLER = "the a of and to in is was for on with as by at".split()


def synthetic_corpus(n_per_domain=60, n_none=30, seed=0):
    """Texts drawn from a domain's words plus filler, and embeddings = domain one-hot + noise."""
    rng = np.random.default_rng(seed)
    names = sorted(VOCAB)
    texts, truth, emb = [], [], []
    for k, name in enumerate(names):
        for _ in range(n_per_domain):
            words = list(rng.choice(VOCAB[name], 12)) + list(rng.choice(FILLER, 8))
            rng.shuffle(words)
            texts.append(" ".join(words))
            truth.append(name)
            v = rng.normal(0, 0.3, 8)
            v[k] += 1.0
            emb.append(v)
    for _ in range(n_none):
        texts.append(" ".join(rng.choice(FILLER, 20)))
        truth.append(NONE_LABEL)
        v = rng.normal(0, 0.3, 8)
        v[7] += 1.0
        emb.append(v)
    emb = np.asarray(emb, np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return texts, truth, emb


FAST = CoarseSettings(epochs=15, lr=0.5, word_ngrams=2, dim=16)


def test_bundled_taxonomy_has_the_67_domains_with_hints():
    tax = load_taxonomy()
    assert len(tax.domains) == 67
    assert tax.names[0] == "aerospace" and "weapons_science" in tax.names
    assert all(d.description and d.hosts and d.keywords for d in tax.domains)
    assert len(tax.content_hash) == 12


def test_taxonomy_hash_follows_content_and_bad_files_are_refused(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("domains:\n  x: {description: one}\n  y: {description: two, hosts: [y.org]}\n")
    b = tmp_path / "b.yaml"
    b.write_text("domains:\n  x: {description: one changed}\n  y: {description: two, hosts: [y.org]}\n")
    assert load_taxonomy(str(a)).content_hash != load_taxonomy(str(b)).content_hash
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains:\n  x: {hosts: [x.org]}\n")
    with pytest.raises(TaxonomyError, match="no description"):
        load_taxonomy(str(bad))
    reserved = tmp_path / "reserved.yaml"
    reserved.write_text("domains:\n  unclassified: {description: no}\n")
    with pytest.raises(TaxonomyError):
        load_taxonomy(str(reserved))
    with pytest.raises(TaxonomyError):
        load_taxonomy(str(tmp_path / "absent.yaml"))


def test_host_rules_match_parents_not_lookalikes():
    rules = {"nasa.gov": "aerospace"}
    assert match_host("www.jpl.nasa.gov", rules) == "aerospace"
    assert match_host("nasa.gov", rules) == "aerospace"
    assert match_host("notnasa.gov", rules) is None
    assert match_host("", rules) is None
    assert root_of("https://WWW.Example.org/a?b") == "example.org"
    assert root_of("http://[::1") == ""  # a broken URL is no host, not a crash


def test_domains_settings_load_and_validate(tmp_path):
    (tmp_path / "tax.yaml").write_text("domains: []\n")  # paths must exist at load
    good = tmp_path / "p.yaml"
    good.write_text("domains:\n  rounds: 2\n  taxonomy_path: tax.yaml\n  benchmark_files: [a.jsonl]\n")
    cfg = load_config(good).domains
    assert cfg.rounds == 2 and cfg.taxonomy_path == str(tmp_path / "tax.yaml") and cfg.benchmark_files == ("a.jsonl",)
    bad = tmp_path / "q.yaml"
    bad.write_text("domains:\n  annotator: gpt\n")
    with pytest.raises(ConfigError, match="annotator"):
        load_config(bad)
    missing = tmp_path / "r.yaml"
    missing.write_text("domains:\n  taxonomy_path: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="domains.taxonomy_path"):
        load_config(missing)


def test_heldout_split_is_deterministic_and_near_its_fraction():
    ids = [f"doc-{i}" for i in range(4000)]
    share = sum(heldout(i, 0.2) for i in ids) / len(ids)
    assert 0.17 < share < 0.23
    assert [heldout(i, 0.2) for i in ids[:50]] == [heldout(i, 0.2) for i in ids[:50]]
    assert not any(heldout(i, 0.0) for i in ids[:50])


def test_coarse_model_round_trips_and_scores_every_domain_in_one_pass():
    texts, truth, _ = synthetic_corpus(30, 10)
    model = train_coarse(texts, truth, FAST)
    again = load_coarse(model_bytes(model))
    probe = ["coach league goal season team", "bake flour oven sugar", ""]
    a = coarse_scores(model, probe, 0.3, FAST.word_ngrams)
    b = coarse_scores(again, probe, 0.3, FAST.word_ngrams)
    assert a == b
    # One thread and seeded initial vectors for every row: the same data, the same bytes
    # (fastText alone leaves most rows uninitialised below 10 threads).
    assert model_bytes(train_coarse(texts, truth, FAST)) == model_bytes(model)
    assert max(a[0], key=a[0].get) == "sports" and max(a[1], key=a[1].get) == "food"
    assert NONE_LABEL not in a[0]
    assert fasttext_line("__label__food  Hello\nWORLD") == "food hello world"  # no label marker survives
    assert fasttext_line("a b c", 2) == "a b c a_b b_c"


def test_cascade_reasons():
    head = FineHead(["food", "none", "sports"], np.eye(3, dtype=np.float32) * 10, np.zeros(3, np.float32))
    emb = np.array([[1, 0, 0], [0, 0, 1]], np.float32)  # fine says food, then sports
    decisions = fine_decisions(head, [{}, {"food": 0.9}, {"food": 0.5}], emb, 0.4)
    assert decisions[0].domain is None and decisions[0].reason == REASON_NOT_RECALLED
    assert decisions[1].domain == "food" and decisions[1].runner_up == "sports"
    # coarse proposed only food, fine is sure it is sports: rejected, not relabelled
    assert decisions[2].domain is None and decisions[2].reason == REASON_FINE_REJECTED


def test_training_loop_learns_a_small_labelled_set_and_keeps_round_books():
    texts, truth, emb = synthetic_corpus()
    n = len(texts)
    held = [i % 5 == 0 for i in range(n)]
    # Seeds for half of the training documents only: the rounds must recall the rest.
    seeds = [t if (i % 2 == 0 or held[i]) else None for i, t in enumerate(truth)]
    head, results = run_rounds(texts, emb, seeds, held, sorted(VOCAB), rounds=3, coarse=FAST,
                               coarse_threshold=0.3, fine_threshold=0.4, fine_epochs=200)
    assert [r.round for r in results] == [1, 2, 3]
    assert set(head.classes) == set(VOCAB) | {NONE_LABEL}
    for r in results:
        for d, v in r.per_domain.items():
            assert v["support"] == sum(1 for i in range(n) if held[i] and truth[i] == d)
            assert v["precision"] >= 0.8 and v["recall"] >= 0.8, (r.round, d, v)
    # Bookkeeping: docs_k = docs_(k-1) + gained - lost, and round 1 gained everything.
    for d in VOCAB:
        assert results[0].per_domain[d]["gained"] == results[0].per_domain[d]["docs"]
        for prev, cur in zip(results, results[1:]):
            p, c = prev.per_domain[d], cur.per_domain[d]
            assert c["docs"] == p["docs"] + c["gained"] - c["lost"]
    # Round 1 trains on the seeds outside the held-out split; later rounds add recalled docs
    # (never held-out ones).
    seeds_train = sum(1 for i in range(n) if seeds[i] is not None and not held[i])
    assert results[0].train_size == seeds_train
    assert seeds_train < results[1].train_size <= n - sum(held)


def test_training_refuses_without_positive_seeds():
    texts, truth, emb = synthetic_corpus(5, 5)
    with pytest.raises(ValueError, match="no DoI seed"):
        run_rounds(texts, emb, [NONE_LABEL] * len(texts), [False] * len(texts), sorted(VOCAB), 1, FAST, 0.3, 0.4)


def test_precision_recall_counts():
    pr = precision_recall(["a", "a", None, "b"], ["a", "b", "a", None], ["a", "b"])
    assert pr["a"] == {"tp": 1, "predicted": 2, "support": 2, "precision": 0.5, "recall": 0.5}
    assert pr["b"]["precision"] is None and pr["b"]["recall"] == 0.0


def test_mmd_and_sliced_wasserstein_behave():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 5))
    y = rng.normal(size=(64, 5))
    far = rng.normal(size=(64, 5)) + 3.0
    sigma = analysis.median_bandwidth([x, y, far])
    assert sigma > 0
    assert analysis.mmd_rbf(x, x, sigma) == pytest.approx(0.0, abs=1e-6)
    assert analysis.mmd_rbf(x, far, sigma) > 3 * analysis.mmd_rbf(x, y, sigma)
    assert analysis.sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-9)
    # A shift of 3 along every axis projects to 3 * sum(u) per direction; the mean |.| is
    # of the order of sqrt(5) * 3 * E|N(0,1)|/sqrt(5) ~ 2.4.
    assert 1.5 < analysis.sliced_wasserstein(x, far, 256) < 3.5
    assert analysis.sliced_wasserstein(x, far[:40]) > 1.0  # unequal sizes go through quantiles


def test_url_tfidf_follows_the_formula():
    top = {"a": [("x.org", 3), ("shared.org", 1)], "b": [("shared.org", 2)], "c": [("y.org", 4)]}
    rows = {(r["domain"], r["url"]): r for r in analysis.url_tfidf(top)}
    m = 3 + 1 + 2 + 4
    assert rows[("a", "x.org")]["tf"] == pytest.approx(3 / m)
    assert rows[("a", "x.org")]["idf"] == pytest.approx(math.log(3 / 1))
    assert rows[("b", "shared.org")]["idf"] == pytest.approx(math.log(3 / 2), abs=1e-6)
    pairs = analysis.url_overlap_pairs(top)
    assert pairs == [{"domain_a": "a", "domain_b": "b", "shared_urls": 1, "jaccard": 0.5}]


def test_heatmap_is_a_png_data_uri():
    png = analysis.heatmap_png(np.array([[0.1, 0.2], [0.3, 0.4]]), ["a", "b"], ["gsm8k", "HumanEval"], "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert analysis.png_markdown(png, "alt").startswith("![alt](data:image/png;base64,iVBOR")
