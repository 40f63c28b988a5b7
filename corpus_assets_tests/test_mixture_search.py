"""The RegMix-style search: on a synthetic problem with a known best mixture the regression
ranks held-out candidates right and the proposal lands near the optimum; the n-gram proxy
prefers mixtures holding the validation set's own source."""

from __future__ import annotations

import random

import numpy as np

from corpus_assets.steps.mixture import regmix
from corpus_assets.steps.mixture.config import parse_spec


def test_synthetic_known_optimum_is_found():
    best = np.array([0.1, 0.6, 0.3])

    def measure(w):  # loss linear in the weights, lowest where source 1 dominates; small noise
        noise = np.random.default_rng(int(w[0] * 1e6)).normal(0, 0.002)
        return {"target": float(2.0 - 1.0 * w[1] - 0.3 * w[2] + noise)}

    result = regmix.search(["a", "b", "c"], np.array([0.5, 0.3, 0.2]), measure, ["target"], n_candidates=40, seed=3)
    assert result["fit"]["target"]["spearman_heldout"] > 0.9
    proposal = np.array(result["proposal"])
    assert proposal.argmax() == 1 and proposal[1] > 0.5
    # The proposal respects RegMix's cap: no weight above 15x its natural share.
    assert np.all(proposal <= 15 * np.array(result["natural"]) + 1e-9)
    assert result["predicted_objective"]["proposal"] < result["predicted_objective"]["natural"]
    del best


def test_ngram_proxy_search_prefers_the_matching_source():
    rng = random.Random(0)
    alphabet = {"x": "abcde ", "y": "vwxyz ", "z": "0123456789 "}
    texts = {k: ["".join(rng.choice(a) for _ in range(300)) for _ in range(20)] for k, a in alphabet.items()}
    validation = {"val_y": ["".join(rng.choice(alphabet["y"]) for _ in range(300)) for _ in range(5)]}
    measure = regmix.ngram_measure([texts["x"], texts["y"], texts["z"]], validation, train_bytes=6000, order=3)
    result = regmix.search(["x", "y", "z"], np.array([0.4, 0.3, 0.3]), measure, ["val_y"], n_candidates=20, seed=1,
                           n_proposal_draws=2000, top_k=50)
    assert result["fit"]["val_y"]["spearman_heldout"] > 0.5
    assert int(np.argmax(result["proposal"])) == 1
    spec = regmix.proposal_spec(result, {"name": "base", "token_budget": 1000, "sources": [
        {"name": n, "asset": "external", "partitions": [n], "weight": 1 / 3} for n in ("x", "y", "z")]}, "proposed")
    parsed = parse_spec(spec)  # a spec training_mixture accepts
    assert parsed.requested_weights()["y"] > 0.4


def test_search_stage_writes_a_buildable_proposal(tmp_path):
    import dataclasses
    import json

    import yaml

    from corpus_assets import mixture_stages as stages
    from corpus_assets.config import PipelineConfig
    from corpus_assets.steps.mixture.config import MixtureConfig
    from corpus_assets.steps.selection.config import SelectionConfig, SelectionSource, SelectionTarget
    from corpus_assets.storage import CorpusStore

    rng = random.Random(0)
    alphabets = {"aa": "abcde ", "bb": "vwxyz ", "cc": "0123456789 "}
    for name, alphabet in alphabets.items():
        with open(tmp_path / f"{name}.jsonl", "w") as fh:
            for i in range(60):
                fh.write(json.dumps({"id": str(i), "text": "".join(rng.choice(alphabet) for _ in range(200))}) + "\n")
    with open(tmp_path / "target.jsonl", "w") as fh:
        for i in range(30):
            fh.write(json.dumps({"text": "".join(rng.choice(alphabets["bb"]) for _ in range(200))}) + "\n")
    config = dataclasses.replace(
        PipelineConfig(),
        selection=SelectionConfig(data_dir=str(tmp_path), targets=(SelectionTarget("tgt", "target.jsonl"),),
                                  sources=tuple(SelectionSource(n, f"{n}.jsonl", ("text",), n, "id") for n in alphabets)),
        mixture=MixtureConfig(search_candidates=12, search_train_bytes=4000, search_lm_order=3,
                              search_docs_per_source=40, search_objective=("tgt",)))
    # A budget where even a 1% source's one ~90-token document is within the share tolerance.
    spec = parse_spec({"name": "mix", "token_budget": 15_000, "sources": [
        {"name": n, "asset": "external", "partitions": [n], "weight": w} for n, w in zip(alphabets, (0.4, 0.3, 0.3))]})
    store = CorpusStore(str(tmp_path / "store"))
    result = stages.build_mixture_search(store, "mix", config, spec)
    assert result["objective"] == ["tgt"] and int(np.argmax(result["proposal"])) == 1
    assert {"heldout_aa", "heldout_bb", "heldout_cc", "tgt"} <= set(result["validation_sets"])
    with open(store.uri(stages.search_path("mix", "proposal.yaml"))) as fh:
        proposed = parse_spec(yaml.safe_load(fh))
    manifest = stages.build_training_mixture(store, proposed.name, config, proposed)
    assert manifest["sources"]["bb"]["requested_share"] > 0.4
