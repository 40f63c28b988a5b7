"""Named recipes: the survey's web pipelines, each one settings file.

A recipe is ``corpus_assets/defaults/recipes/<name>.yaml``:

- ``settings``: pipeline settings (any section of ``defaults/pipeline.yaml``) that make
  the stages behave as the recipe's paper defines them. A settings file that names the
  recipe (``recipe: c4``, or ``$CORPUS_RECIPE``) starts from these, and its own keys
  override them, so a lab can run "C4 with our blocklist";
- ``assets``: the assets the recipe materializes, in the order they run (each reads only
  assets before it); ``output`` is the one whose documents are the recipe's corpus;
- ``description``, ``paper`` and ``published_retention``: what the recipe is and what its
  paper reports, printed beside the sample's figures (docs/recipes.md).

Nothing else differs between recipes: the same assets, lineage and retention metadata.
Since every asset's ``code_version`` fingerprints the settings it reads, switching the
recipe marks exactly the assets whose settings change (and their downstream) stale.
Nothing here imports Dagster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).resolve().parent / "defaults" / "recipes"
DEFAULT_RECIPE = "refinedweb"
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Every asset a recipe may name, with its partitioning: "dump" or "shard" (dump x shard).
ASSET_LEVELS = {
    "crawl_manifest": "dump",
    "raw_documents": "shard",
    "rw_raw": "shard",
    "gpt3_quality_model": "dump",
    "rw_quality_signals": "shard",
    "rw_filtered": "shard",
    "minhash_signatures": "shard",
    "minhash_buckets": "dump",
    "duplicate_clusters": "dump",
    "exact_substring_spans": "dump",
    "rw_deduped": "shard",
    "dedup_index": "dump",
    "ccnet_text": "shard",
    "ccnet_line_duplicates": "dump",
    "ccnet_line_dedup": "shard",
    "ccnet_perplexity": "shard",
    "ccnet_cutoffs": "dump",
    "ccnet_buckets": "shard",
    "llama_reference_model": "dump",
    "llama_reference_filtered": "shard",
}
# Shard assets that are not document tables (no retention report).
NOT_DOCUMENTS = {"minhash_signatures"}
# Dump-level dedup runs dump after dump in crawl order (each against the earlier index).
DEDUP_CHAIN = ("minhash_buckets", "duplicate_clusters", "exact_substring_spans", "rw_deduped", "dedup_index")
_KEYS = {"description", "paper", "published_retention", "output", "assets", "settings", "requires"}


class RecipeError(ValueError):
    """A recipe that cannot be used: the message names the recipe and the problem."""


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    paper: str
    published_retention: str
    output: str
    assets: tuple[str, ...]
    settings: dict
    path: str
    # dotted settings the recipe cannot run without (webtext: url_allowlist.path)
    requires: tuple[str, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        """Stages a recipe builds itself in place of a standalone branch (the hook of
        ``assets/ccnet.py``). None: the ``ccnet`` and ``llama`` recipes use CCNet's own
        branch from raw_documents, in CCNet's order."""
        return ()

    def document_assets(self) -> list[str]:
        """The recipe's document tables (dump x shard, with a retention report each)."""
        return [a for a in self.assets if ASSET_LEVELS[a] == "shard" and a not in NOT_DOCUMENTS]


def recipe_homes(name: str, repo_root: Path) -> tuple[Path, Path]:
    """Where recipe ``name`` keeps its partitions and its Dagster instance by default:
    ``.corpus_recipes/<name>`` and ``.corpus_recipes/<name>/dagster_home``. The demo
    (``--recipe``), ``CORPUS_RECIPE=<name> make dev`` and the definitions' default store all
    use this pair, so the UI's materializations and the store it reads are the same recipe's
    (a recipe's runs never land in ``make dev``'s own instance)."""
    root = repo_root / ".corpus_recipes" / name
    return root, root / "dagster_home"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml") if NAME_RE.fullmatch(p.stem))


def recipe_path(name: object) -> Path:
    """The file of recipe ``name``; a name that is not a plain lower-case word (a path,
    ``..``, a blank, a control character) or names no bundled recipe is refused."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RecipeError(f"{name!r:.80} is not a recipe name (lower-case letters, digits and '_', starting with "
                          f"a letter; known: {', '.join(recipe_names())})")
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise RecipeError(f"no recipe {name!r} (known: {', '.join(recipe_names())})")
    return path


def load_recipe(name: object) -> Recipe:
    from corpus_assets.config import _SettingsLoader

    path = recipe_path(name)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_SettingsLoader)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise RecipeError(f"{path}: not a readable YAML file: {str(exc)[:300]}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping ({', '.join(sorted(_KEYS))})")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise RecipeError(f"{path}: unknown keys {unknown} (known: {', '.join(sorted(_KEYS))})")
    assets = raw.get("assets")
    if not isinstance(assets, list) or not assets or not all(isinstance(a, str) for a in assets):
        raise RecipeError(f"{path}: assets: a list of asset names")
    strange = [a for a in assets if a not in ASSET_LEVELS]
    if strange:
        raise RecipeError(f"{path}: assets: unknown {strange} (known: {', '.join(ASSET_LEVELS)})")
    if len(set(assets)) != len(assets):
        raise RecipeError(f"{path}: assets: an asset is named twice")
    output = raw.get("output")
    if output not in assets or ASSET_LEVELS[output] != "shard" or output in NOT_DOCUMENTS:
        raise RecipeError(f"{path}: output: {output!r} must be one of the recipe's document assets")
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise RecipeError(f"{path}: settings: a mapping of pipeline sections")
    if "recipe" in settings:
        raise RecipeError(f"{path}: settings: a recipe cannot name another recipe")
    requires = raw.get("requires") or []
    dotted = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")
    if not isinstance(requires, list) or not all(isinstance(r, str) and dotted.fullmatch(r) for r in requires):
        raise RecipeError(f"{path}: requires: a list of dotted settings (url_allowlist.path)")
    texts = {k: raw.get(k) or "" for k in ("description", "paper", "published_retention")}
    if not all(isinstance(v, str) for v in texts.values()):
        raise RecipeError(f"{path}: description, paper and published_retention are text")
    return Recipe(name=str(name), output=output, assets=tuple(assets), settings=settings, path=str(path),
                  requires=tuple(requires), **texts)


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def code_defaults() -> dict:
    """Every setting's default (the dataclasses' own values) as plain YAML-like values: what
    ``defaults/pipeline.yaml`` restates. Computed once per process."""
    global _CODE_DEFAULTS
    if _CODE_DEFAULTS is None:
        from corpus_assets.config import DEFAULT_CONFIG_FILE, _VALIDATOR

        config = _VALIDATOR.validate_json("{}", strict=True, context={"base_dir": DEFAULT_CONFIG_FILE.parent})
        _CODE_DEFAULTS = _VALIDATOR.dump_python(config, mode="json")
    return _CODE_DEFAULTS


_CODE_DEFAULTS: dict | None = None
_MISSING = object()


def _restated(file_value: Any, default: Any) -> bool:
    """True when a file's value only restates the default (lists and tuples alike; a bool
    is never equal to a number here)."""
    if default is _MISSING:
        return False
    if isinstance(file_value, bool) or isinstance(default, bool):
        return type(file_value) is type(default) and file_value == default
    try:
        return bool(file_value == default)
    except Exception:  # noqa: BLE001 - an odd YAML value is simply not a restatement
        return False


def merge_over_recipe(own: dict, recipe_settings: dict, defaults: dict, where: str = "",
                      forced: frozenset = frozenset()) -> tuple[dict, list[str]]:
    """The settings file's keys (``own``) over the recipe's, by one rule whatever the file's
    path: a key the recipe sets is overridden only by a value that differs from the code
    default. A file that restates a default (a copy of ``pipeline.yaml``, or the bundled file
    itself) does not undo the recipe; an edited value (``language_id.min_score: 0.8``) wins.
    Returns the merged mapping and the dotted keys where a restated default yielded to the
    recipe (reported as a warning)."""
    out = dict(recipe_settings)
    yielded: list[str] = []
    for key, value in own.items():
        dotted = f"{where}{key}"
        if key not in recipe_settings:
            out[key] = value
            continue
        mine = recipe_settings[key]
        default = defaults.get(key, _MISSING) if isinstance(defaults, dict) else _MISSING
        if isinstance(value, dict) and isinstance(mine, dict):
            out[key], deeper = merge_over_recipe(value, mine, default if isinstance(default, dict) else {},
                                                 dotted + ".", forced)
            yielded.extend(deeper)
        elif dotted not in forced and _restated(value, default) and not _restated(mine, default):
            yielded.append(dotted)  # the recipe's value stays
        else:
            out[key] = value
    return out, yielded


_WARNED: set = set()
# A settings file's list of dotted keys whose values win over the recipe's even where they
# restate the default ("C4 without the bad-words rule": quality_thresholds.c4_drop_bad_words).
OVERRIDES_KEY = "recipe_overrides"


def apply_recipe(values: dict[str, Any], name: object, source: str = "") -> dict[str, Any]:
    """The settings file's ``values`` over recipe ``name``'s settings, with ``recipe`` set.
    A key the recipe sets is overridden only by a value that differs from its code default
    (``merge_over_recipe``); where a file restates a default the recipe sets otherwise, the
    recipe's value is used and one warning per file lists those keys. The recipe's own
    settings are checked for unknown keys here, so a mistake in a recipe file is reported
    against that file."""
    from corpus_assets.config import PipelineConfig, _unknown_keys

    recipe = load_recipe(name)
    problems = _unknown_keys(PipelineConfig, recipe.settings, ())
    if problems:
        raise RecipeError(f"{recipe.path}: " + "; ".join(problems))
    own = {k: v for k, v in values.items() if k not in ("recipe", OVERRIDES_KEY)}
    forced = values.get(OVERRIDES_KEY) or []
    if not isinstance(forced, list) or not all(isinstance(k, str) for k in forced):
        raise RecipeError(f"{OVERRIDES_KEY}: a list of dotted settings (quality_thresholds.c4)")
    for dotted in forced:
        node = own
        for part in dotted.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            raise RecipeError(f"{OVERRIDES_KEY}: {dotted[:80]!r} is not set in this file")
    merged, yielded = merge_over_recipe(own, recipe.settings, code_defaults(), forced=frozenset(forced))
    from corpus_assets.config import DEFAULT_CONFIG_FILE

    # The bundled file restates every default by design: no warning for it.
    bundled = bool(source) and Path(source).resolve() == DEFAULT_CONFIG_FILE
    if yielded and not bundled and (source, recipe.name, tuple(yielded)) not in _WARNED:
        _WARNED.add((source, recipe.name, tuple(yielded)))
        import logging

        logging.getLogger(__name__).warning(
            "%s: %d key(s) restate the default where recipe %s sets another value; the recipe's "
            "value is used (list a key under recipe_overrides: to keep yours; docs/recipes.md, precedence): %s",
            source or "settings", len(yielded),
            recipe.name, ", ".join(yielded[:20]) + (" ..." if len(yielded) > 20 else ""))
    merged["recipe"] = recipe.name
    return merged


def steps_after(config, stage: str) -> list:
    """The document steps that follow ``stage`` when a recipe builds CCNet's line dedup on
    its own stream (``ccnet_stages.build_line_dedup_assets``, the hook of assets/ccnet.py):
    CCNet's language ID at 0.5, as in CCNet's order. No bundled recipe uses the hook (they
    run CCNet's branch from raw_documents), so this only keeps it whole."""
    if stage == "ccnet_line_dedup":
        from corpus_assets.ccnet_stages import ccnet_language_steps

        return ccnet_language_steps(config)
    return []


def missing_requirements(config) -> list[str]:
    """The settings ``config.recipe`` requires that are unset (None or empty), as error lines."""
    problems = []
    for dotted in load_recipe(config.recipe).requires:
        value = config
        for part in dotted.split("."):
            value = getattr(value, part, None)
        if value is None or value is False or value in ("", ()):
            problems.append(f"{dotted}: recipe {config.recipe} needs it set ({load_recipe(config.recipe).path})")
    return problems


def run_phases(recipe: Recipe) -> list[tuple[str, list[str]]]:
    """The recipe's assets as runs: ("shard", assets) runs over every (dump, shard),
    ("dump", assets) over every dump, and ("dedup", assets) dump after dump in crawl
    order (buckets / clusters / spans, then that dump's rw_deduped shards, then its
    index), consecutive assets of one kind in one run."""
    phases: list[tuple[str, list[str]]] = []
    for asset in recipe.assets:
        kind = "dedup" if asset in DEDUP_CHAIN else ASSET_LEVELS[asset]
        if phases and phases[-1][0] == kind:
            phases[-1][1].append(asset)
        else:
            phases.append((kind, [asset]))
    return phases
