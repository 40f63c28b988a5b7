"""Named recipes: every bundled recipe loads, validates and builds its graph; a settings
file's own keys override the recipe's; hostile names and broken recipe files are refused
naming the problem; switching recipe changes exactly the affected assets' code versions;
and the gpt3 recipe's classifier stages run end to end on the project's fixture crawl."""

import gzip
import json

import dagster as dg
import pytest

from corpus_assets import recipes
from corpus_assets.config import ConfigError, load_config
from corpus_assets.definitions import build_definitions
from corpus_assets.partitions import DUMP_DIM, shard_keys
from corpus_assets.stages import documents_path, removed_path
from corpus_assets_tests.helpers import latest, materialize

BUNDLED = ["c4", "ccnet", "fineweb", "gpt3", "llama", "refinedweb", "webtext"]


def _settings(tmp_path, text: str):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def _code_versions(config) -> dict:
    defs = build_definitions(config=config, corpus_root="/tmp/unused-corpus", crawl_root="/tmp/unused-crawl")
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}


def test_every_bundled_recipe_loads_validates_and_defines_its_assets(tmp_path):
    assert set(BUNDLED) <= set(recipes.recipe_names())
    allow = tmp_path / "allow.txt"
    allow.write_text("https://example.com/a\n")
    for name in BUNDLED:
        recipe = recipes.load_recipe(name)
        needs = f"url_allowlist: {{path: {allow}}}\n" if name == "webtext" else ""
        config = load_config(_settings(tmp_path, f"recipe: {name}\n{needs}"))
        assert config.recipe == name
        defined = set(_code_versions(config))
        assert set(recipe.assets) <= defined, (name, set(recipe.assets) - defined)
        assert recipe.output in recipe.document_assets()
        phases = [a for _, assets in recipes.run_phases(recipe) for a in assets]
        assert phases == list(recipe.assets)


def test_recipe_settings_under_the_file_and_over_the_bundled_defaults(tmp_path, monkeypatch):
    c4 = load_config(_settings(tmp_path, "recipe: c4\nquality_thresholds:\n  c4_min_sentences: 3\n"))
    assert c4.quality_thresholds.c4 and not c4.quality_thresholds.gopher_quality   # the recipe's
    assert c4.quality_thresholds.c4_min_sentences == 3                           # the file's
    assert c4.url_filter.strict_words_path is None and c4.dedup.verify_min_jaccard == 1.0
    # a value that only restates the default does not undo the recipe (docs/recipes.md)
    mine = load_config(_settings(tmp_path, "recipe: c4\nquality_thresholds:\n  c4: false\n"))
    assert mine.quality_thresholds.c4
    # the bundled file restates every default: a recipe named by $CORPUS_RECIPE wins there
    monkeypatch.setenv("CORPUS_RECIPE", "fineweb")
    fineweb = load_config()
    assert fineweb.recipe == "fineweb" and fineweb.quality_thresholds.fineweb
    assert not fineweb.quality_signals.c4_filter_no_terminal_punct and fineweb.dedup.minhash_preset == "fineweb"


def test_a_recipe_names_the_settings_it_cannot_run_without(tmp_path):
    with pytest.raises(ConfigError, match="url_allowlist.path: recipe webtext needs it set"):
        load_config(_settings(tmp_path, "recipe: webtext\n"))


@pytest.mark.parametrize("name", ["../pipeline", "/etc/passwd", "C4", "c4 ", "c4\n", "", "a/b", "x" * 41,
                                  "gpt3.yaml", "nosuchrecipe", "_hidden", "1c4"])
def test_hostile_or_unknown_recipe_names_are_refused(tmp_path, monkeypatch, name):
    with pytest.raises(recipes.RecipeError):
        recipes.load_recipe(name)
    monkeypatch.setenv("CORPUS_RECIPE", name) if name.strip() else None
    text = "num_shards: 2\n" if name.strip() else f"recipe: {json.dumps(name)}\n"
    with pytest.raises(ConfigError, match="recipe"):
        load_config(_settings(tmp_path, text))


@pytest.mark.parametrize("body, problem", [
    ("assets: [raw_documents]\noutput: raw_documents\nstages: []\n", "unknown keys"),
    ("assets: [raw_documents, rm_rf]\noutput: raw_documents\n", "unknown"),
    ("assets: [raw_documents, minhash_signatures]\noutput: minhash_signatures\n", "output"),
    ("assets: [raw_documents, raw_documents]\noutput: raw_documents\n", "twice"),
    ("assets: [raw_documents]\noutput: raw_documents\nsettings: {recipe: c4}\n", "another recipe"),
    ("assets: [raw_documents]\noutput: raw_documents\nsettings: {quality_tresholds: {c4: true}}\n", "quality_tresholds"),
    ("assets: &a [raw_documents]\noutput: raw_documents\n", "anchors"),
    ("- raw_documents\n", "mapping"),
    ("assets: [raw_documents]\noutput: raw_documents\nrequires: [../etc]\n", "requires"),
])
def test_broken_recipe_files_are_refused_naming_the_problem(tmp_path, monkeypatch, body, problem):
    monkeypatch.setattr(recipes, "RECIPES_DIR", tmp_path)
    (tmp_path / "broken.yaml").write_text(body)
    with pytest.raises(recipes.RecipeError, match=problem):
        recipes.apply_recipe({}, "broken")


def test_switching_recipe_changes_exactly_the_affected_code_versions(tmp_path):
    base = _code_versions(load_config(_settings(tmp_path, "recipe: refinedweb\n")))
    assert _code_versions(load_config(_settings(tmp_path, "recipe: ccnet\n"))) == base  # ccnet's defaults are main's
    gpt3 = _code_versions(load_config(_settings(tmp_path, "recipe: gpt3\n")))
    changed = {a for a in base if gpt3.get(a) != base[a]}
    assert {"rw_raw", "rw_filtered", "minhash_signatures"} <= changed
    assert not changed & {"crawl_manifest", "raw_documents", "rw_quality_signals", "ccnet_text", "ccnet_buckets"}
    assert "gpt3_quality_model" in gpt3 and "gpt3_quality_model" not in base


REFERENCE = [
    "The cathedral of the city was built in the twelfth century by the bishop of the province.",
    "The river rises in the hills and flows through the county before it reaches the sea.",
    "The parish had a population of four hundred at the census, most of them farmers.",
    "The village is located on the old road between the two market towns of the region.",
]


def test_gpt3_and_reference_classifiers_run_end_to_end_on_the_fixture_crawl(tmp_path, fixture_crawl):
    reference = tmp_path / "reference.jsonl.gz"
    with gzip.open(reference, "wt") as fh:
        for i in range(40):
            fh.write(json.dumps({"id": i, "text": f"{REFERENCE[i % 4]} {REFERENCE[(i + 1) % 4]}"}) + "\n")
    config = load_config(_settings(tmp_path, f"""
recipe: gpt3
num_shards: 2
url_filter: {{blocklist_dir: {fixture_crawl / 'blocklists' / 'ut1'}, blocklist_categories: [gambling]}}
classifiers:
  gpt3: {{folds: 2, hash_bits: 12, positives_per_negative: 3.0, reference: {{path: {reference}}}}}
  llama: {{enabled: true, upstream: rw_raw, folds: 2, positives_per_negative: 3.0, reference: {{path: {reference}}}}}
"""))
    defs = build_definitions(config=config, corpus_root=str(tmp_path / "corpus"), crawl_root=str(fixture_crawl))
    dump = "CC-MAIN-2024-10"
    from corpus_assets.storage import CorpusStore

    store = CorpusStore(str(tmp_path / "corpus"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DUMP_DIM, [dump])
        materialize(defs, instance, ["crawl_manifest"], dump)
        shards = shard_keys(2)
        for shard in shards:
            materialize(defs, instance, ["raw_documents", "rw_raw"], f"{dump}|{shard}")
        materialize(defs, instance, ["gpt3_quality_model", "llama_reference_model"], dump)
        model = latest(instance, "gpt3_quality_model", dump)
        assert 0.0 <= model["held_out_f1"] <= 1.0 and model["training_crawl_docs"] >= 3
        kept = removed = 0
        for shard in shards:
            key = f"{dump}|{shard}"
            materialize(defs, instance, ["rw_quality_signals", "rw_filtered", "llama_reference_filtered"], key)
            rows = store.read_table(documents_path("rw_filtered", dump, shard)).to_pylist()
            ledger = store.read_table(removed_path("rw_filtered", dump, shard)).to_pylist()
            assert all(0.0 <= r["gpt3_quality_score"] <= 1.0 for r in rows)
            assert {r["reason"] for r in ledger} <= {"gpt3_pareto_rejected"}
            kept, removed = kept + len(rows), removed + len(ledger)
            llama = store.read_table(documents_path("llama_reference_filtered", dump, shard)).to_pylist()
            assert all(r["llama_reference_score"] >= 0.5 for r in llama)
            assert {r["reason"] for r in store.read_table(removed_path("llama_reference_filtered", dump, shard))
                    .to_pylist()} <= {"not_reference_like"}
        assert kept + removed >= 3


def test_ccnet_hook_gets_ccnets_language_id_after_line_dedup():
    from corpus_assets.ccnet_stages import recipe_steps_after_line_dedup

    config = load_config()
    steps = recipe_steps_after_line_dedup(config)
    assert [s.name for s in steps] == ["language_id"]
    assert steps[0].config.min_score == config.ccnet.language_min_score
    assert recipes.steps_after(config, "rw_filtered") == []
