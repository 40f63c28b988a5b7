"""GPT-3's and LLaMA's quality classifiers: the Pareto rule's keep rate against its
closed form, cross-fitting (no document is scored by a model that saw it), held-out F1
on a separable toy set, models that survive storage, and the steps' decisions."""

import numpy as np
import pytest

from corpus_assets.steps.classifiers.common import fold_of, held_out_figures, training_set
from corpus_assets.steps.classifiers.config import Gpt3ClassifierConfig, ReferenceClassifierConfig
from corpus_assets.steps.classifiers.gpt3 import Gpt3Classifier, HashedLogisticRegression, keep_probability, pareto_keep
from corpus_assets.steps.classifiers.reference import ReferenceClassifier
from corpus_assets.steps.classifiers.steps import Gpt3QualityFilter, ReferenceFilter

WIKI_WORDS = "history city cathedral century bishop river population census located province parish".split()
SHOP_WORDS = "buy now cart shipping free click login price deal sale offer checkout".split()


def _toy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    positives = [(f"ref:{i}", " ".join(rng.choice(WIKI_WORDS, 30))) for i in range(n)]
    negatives = [(f"crawl:{i}", " ".join(rng.choice(SHOP_WORDS, 30))) for i in range(n)]
    return positives, negatives


@pytest.fixture(scope="module")
def toy_gpt3():
    positives, negatives = _toy()
    config = Gpt3ClassifierConfig(enabled=True, folds=4, hash_bits=12)
    data = training_set(negatives, positives, config.folds, config.seed, 10_000, 1.0)
    return (*Gpt3Classifier.train(data, config), positives, negatives)


@pytest.mark.parametrize("score", [0.0, 0.5, 0.9, 1.0])
def test_pareto_keep_rate_matches_its_closed_form(score):
    n = 20_000
    kept = sum(pareto_keep(score, f"doc-{i}", 9.0, seed=7)[0] for i in range(n))
    expected = keep_probability(score, 9.0)  # (2 - s)^-9: 0.2% at 0, 2.6% at 0.5, 1 at 1
    sigma = max((expected * (1 - expected) / n) ** 0.5, 1e-9)
    assert abs(kept / n - expected) <= 4 * sigma + 1e-12, (kept / n, expected)


def test_pareto_draws_are_fixed_by_seed_and_doc_id_not_by_order():
    ids = [f"d{i}" for i in range(200)]
    first = [pareto_keep(0.6, i, 9.0, seed=1)[1] for i in ids]
    again = [pareto_keep(0.6, i, 9.0, seed=1)[1] for i in reversed(ids)][::-1]
    other_seed = [pareto_keep(0.6, i, 9.0, seed=2)[1] for i in ids]
    assert first == again
    assert first != other_seed
    # a score of 1 keeps every document (the draw is never negative)
    assert all(pareto_keep(1.0, i, 9.0, seed=1)[0] for i in ids)


def test_cross_fitting_never_scores_a_document_with_a_model_trained_on_it():
    """Labels are noise and every document carries a unique token: a model that saw a
    document memorizes it (in-sample accuracy ~1), so out-of-fold scores are at chance
    only if no document is scored by a model trained on it."""
    rng = np.random.default_rng(3)
    n = 240
    ids = [f"doc{i}" for i in range(n)]
    texts = [f"uniq{i} " + " ".join(rng.choice(WIKI_WORDS, 5)) for i in range(n)]
    labels = rng.integers(0, 2, n)
    config = Gpt3ClassifierConfig(enabled=True, folds=4, hash_bits=14, regularization_c=100.0)
    data = training_set([(i, t) for i, t, y in zip(ids, texts, labels) if y == 0],
                        [(i, t) for i, t, y in zip(ids, texts, labels) if y == 1], config.folds, config.seed,
                        n, 10.0)
    classifier, report = Gpt3Classifier.train(data, config)
    truth = dict(zip(data.ids, data.labels))
    own = classifier.scores(data.ids, data.texts)
    own_accuracy = np.mean((own >= 0.5) == np.array([truth[i] for i in data.ids]))
    # the same documents scored by the next fold's model, which was trained on them
    seen = np.array([classifier._fold_scores((fold_of(i, config.folds, config.seed) + 1) % config.folds, [t])[0]
                     for i, t in zip(data.ids, data.texts)])
    seen_accuracy = np.mean((seen >= 0.5) == np.array([truth[i] for i in data.ids]))
    assert seen_accuracy > 0.95
    assert own_accuracy < 0.65
    assert report["held_out"]["f1"] < 0.75  # held-out figures are out of fold too


def test_gpt3_classifier_separates_a_separable_toy_set(toy_gpt3):
    classifier, report, positives, negatives = toy_gpt3
    assert report["held_out"]["f1"] >= 0.95
    assert report["held_out"]["positives"] == len(positives)
    scores = classifier.scores([i for i, _ in positives + negatives], [t for _, t in positives + negatives])
    assert scores[:len(positives)].min() > scores[len(positives):].max()


def test_gpt3_model_survives_its_table(toy_gpt3):
    classifier, _, positives, _ = toy_gpt3
    again = Gpt3Classifier.from_table(classifier.to_table(), classifier.config)
    doc_id, text = positives[0]
    assert again.score(doc_id, text) == pytest.approx(classifier.score(doc_id, text), rel=1e-6)
    with pytest.raises(ValueError, match="re-train"):
        Gpt3Classifier.from_table(classifier.to_table(), Gpt3ClassifierConfig(folds=5, hash_bits=12))


def test_linear_reference_classifier_uses_bigrams_and_decides_by_threshold():
    positives, negatives = _toy(60, seed=2)
    config = ReferenceClassifierConfig(enabled=True, folds=3, hash_bits=12, threshold=0.5)
    data = training_set(negatives, positives, config.folds, config.seed, 10_000, 1.0)
    classifier, report = HashedLogisticRegression.train(data, config, ngrams=2, setting="classifiers.llama")
    assert report["held_out"]["f1"] >= 0.95
    again = HashedLogisticRegression.from_table(classifier.to_table(), config, ngrams=2)
    assert again.vectorizer.ngram_range == (1, 2)
    step = ReferenceFilter(again)
    doc = {"doc_id": positives[1][0], "text": positives[1][1]}
    assert step.apply(doc) is None and doc["llama_reference_score"] >= 0.5
    assert step.apply({"doc_id": negatives[1][0], "text": negatives[1][1]})[0] == "not_reference_like"


def test_fasttext_reference_classifier_separates_a_separable_toy_set_and_survives_its_table():
    positives, negatives = _toy(60, seed=1)
    config = ReferenceClassifierConfig(enabled=True, folds=3, engine="fasttext")
    data = training_set(negatives, positives, config.folds, config.seed, 10_000, 1.0)
    classifier, report = ReferenceClassifier.train(data, config)
    assert report["held_out"]["f1"] >= 0.95
    again = ReferenceClassifier.from_table(classifier.to_table(), config)
    doc_id, text = positives[0]
    assert again.score(doc_id, text) == pytest.approx(classifier.score(doc_id, text), abs=1e-6)
    step = ReferenceFilter(again)
    kept_doc, shop_doc = {"doc_id": doc_id, "text": text}, {"doc_id": negatives[0][0], "text": negatives[0][1]}
    assert step.apply(kept_doc) is None and kept_doc["llama_reference_score"] >= 0.5
    reason, detail = step.apply(shop_doc)
    assert reason == "not_reference_like" and "score=" in detail


def test_gpt3_step_records_score_and_draw(toy_gpt3):
    classifier, _, positives, negatives = toy_gpt3
    step = Gpt3QualityFilter(classifier)
    outcomes = []
    for doc_id, text in negatives[:50]:
        doc = {"doc_id": doc_id, "text": text}
        outcomes.append(step.apply(doc))
        assert 0.0 <= doc["gpt3_quality_score"] < 0.5 and doc["gpt3_pareto_draw"] >= 0.0
    assert sum(o is None for o in outcomes) <= 5  # low scores: (2 - s)^-9 is a few percent at most
    assert {o[0] for o in outcomes if o} == {"gpt3_pareto_rejected"}


def test_too_few_documents_for_the_folds_is_a_clear_error():
    data = training_set([("c1", "buy now")], [("r1", "the history")], 5, 0, 10, 1.0)
    with pytest.raises(ValueError, match="too few documents"):
        Gpt3Classifier.train(data, Gpt3ClassifierConfig(folds=5, hash_bits=8))


def test_held_out_figures():
    figures = held_out_figures(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.6, 0.1]))
    assert figures["precision"] == 0.5 and figures["recall"] == 0.5 and figures["f1"] == 0.5
