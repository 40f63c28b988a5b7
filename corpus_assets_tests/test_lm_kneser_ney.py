"""The modified Kneser-Ney estimator on corpora small enough to compute by hand, and its
ARPA file read back by kenlm (the query engine CCNet uses) and by our own reader."""

import itertools
import math

import numpy as np
import pytest

from corpus_assets.steps.lm.arpa import ArpaModel
from corpus_assets.steps.lm.kneser_ney import KneserNeyModel, discounts_from_counts, perplexity

WORDS = ["<unk>", "<s>", "</s>", "a", "b", "c", "d"]
IDS = {w: i for i, w in enumerate(WORDS)}


def ids(text):
    return [IDS[w] for w in text.split()]


@pytest.fixture(scope="module")
def bigram():
    # <s> a b </s> and <s> a c </s>: every number below is worked out in the comments
    return KneserNeyModel(2, 8, bos=1, eos=2, unk=0).fit([ids("a b"), ids("a c")])


def test_discounts_follow_chen_goodman_from_counts_of_counts():
    # t1..t4 = 10, 4, 2, 1: Y = 10/18; D1 = 1 - 2Y(4/10) = 5/9; D2 = 2 - 3Y(2/4) = 7/6;
    # D3+ = 3 - 4Y(1/2) = 17/9
    adjusted = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4] * 1 + [9] * 3)
    (d1, d2, d3), fell_back = discounts_from_counts(adjusted, (0.5, 1.0, 1.5))
    assert not fell_back
    assert (d1, d2, d3) == pytest.approx((5 / 9, 7 / 6, 17 / 9))
    # no count of 3: undefined, so KenLM's fallback
    assert discounts_from_counts(np.array([1, 1, 2, 4]), (0.5, 1.0, 1.5)) == ((0.5, 1.0, 1.5), True)


def test_unigrams_use_adjusted_counts_and_the_uniform_floor(bigram):
    # adjusted counts N1+(. w): a 1 (<s> a), b 1, c 1, </s> 2 (b </s>, c </s>); their
    # counts-of-counts have no 3, so D = (0.5, 1, 1.5); total 5, gamma = (0.5*3 + 1*1)/5
    # = 0.5 spread over {a, b, c, </s>, <unk>}: p(a) = 0.5/5 + 0.1 = 0.2, p(</s>) = 1/5 + 0.1
    uni = bigram.tables[0]
    prob = dict(zip(uni.ids.tolist(), (10 ** uni.log10_prob).tolist()))
    assert prob[IDS["a"]] == pytest.approx(0.2)
    assert prob[IDS["b"]] == pytest.approx(0.2)
    assert prob[IDS["</s>"]] == pytest.approx(0.3)
    assert prob[IDS["<unk>"]] == pytest.approx(0.1)
    assert uni.log10_prob[uni.ids.tolist().index(IDS["<s>"])] == -99.0
    assert sum(p for i, p in prob.items() if i != IDS["<s>"]) == pytest.approx(1.0)


def test_bigram_probabilities_and_backoff_by_hand(bigram):
    # <s> a: raw count 2 (nothing precedes <s>), D2 = 1: u = 1/2, gamma(<s>) = 1/2,
    # p(a|<s>) = 0.5 + 0.5 * 0.2 = 0.6; a b, a c: u = 0.25, gamma(a) = 0.5,
    # p(b|a) = 0.25 + 0.5 * 0.2 = 0.35; b </s>: p = 0.5 + 0.5 * 0.3 = 0.65
    logp = bigram.log10_probs([ids("a b")])
    assert 10 ** logp == pytest.approx([0.6, 0.35, 0.65])
    # unseen bigrams back off: p(b|<s>) = 0.5 * 0.2, p(a|b) = 0.5 * 0.2, p(</s>|a) = 0.5 * 0.3
    assert 10 ** bigram.log10_probs([ids("b a")]) == pytest.approx([0.1, 0.1, 0.15])
    # CCNet's perplexity of "a b": one line of two words, so length 2 + 1
    total = bigram.sentence_log10(ids("a b"))
    assert perplexity(total, 3) == pytest.approx(0.1365 ** (-1 / 3))
    # an id never seen is <unk>
    assert 10 ** bigram.log10_probs([[IDS["d"]]])[0] == pytest.approx(0.5 * 0.1)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_gives_a_distribution(order):
    corpus = ["a b c", "a b d", "b c a", "c a b c", "a a b", "d", "b b b b"]
    model = KneserNeyModel(order, 8, bos=1, eos=2, unk=0).fit([ids(s) for s in corpus])
    predicted = [IDS[w] for w in ("<unk>", "</s>", "a", "b", "c", "d")]
    for length in range(order):
        for history in itertools.product([IDS[w] for w in "a b c d".split()], repeat=length):
            total = 0.0
            for w in predicted:
                if w == IDS["</s>"]:
                    total += 10 ** model.log10_probs([list(history)])[-1]
                else:
                    total += 10 ** model.log10_probs([list(history) + [w]])[length]
            assert total == pytest.approx(1.0, abs=1e-9), (order, history)


@pytest.fixture(scope="module")
def trigram_arpa(tmp_path_factory):
    corpus = ["a b c", "a b d", "b c a", "c a b c", "a a b", "d c", "b b b b", "c c a b"]
    model = KneserNeyModel(3, 8, bos=1, eos=2, unk=0).fit([ids(s) for s in corpus])
    path = tmp_path_factory.mktemp("arpa") / "toy.arpa"
    model.write_arpa(path, WORDS)
    return model, path


QUERIES = ["a b c", "d d d", "c b a d", "a", "", "b b b b b", "d a c b a"]


def test_kenlm_reads_our_arpa_and_agrees(trigram_arpa):
    kenlm = pytest.importorskip("kenlm", reason="kenlm is not installed")
    model, path = trigram_arpa
    lm = kenlm.Model(str(path))
    assert lm.order == 3
    for text in QUERIES:
        ours = model.log10_probs([ids(text)])
        theirs = [score for score, _, _ in lm.full_scores(text, bos=True, eos=True)]
        assert ours == pytest.approx(theirs, abs=1e-5), text
    # a word outside the vocabulary is <unk> in both
    assert lm.score("zzz", bos=True, eos=True) == pytest.approx(
        model.sentence_log10([IDS["<unk>"]]), abs=1e-5)


def test_our_arpa_reader_agrees(trigram_arpa):
    model, path = trigram_arpa
    arpa = ArpaModel.load(path)
    for text in QUERIES:
        assert arpa.score(text) == pytest.approx(model.sentence_log10(ids(text)), abs=1e-5)
    assert arpa.score("zzz") == pytest.approx(model.sentence_log10([0]), abs=1e-5)


def test_vocabulary_too_large_to_pack_is_refused():
    with pytest.raises(ValueError, match="pack"):
        KneserNeyModel(5, 1 << 13, bos=1, eos=2, unk=0)
    assert math.isinf(perplexity(0.0, 0))
