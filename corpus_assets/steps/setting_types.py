"""Types for the fields of the steps' settings dataclasses: each says the kind and the
range of a setting next to the field, and the settings loader (``corpus_assets/config.py``)
checks every field of every section against them with pydantic when the file is read.

A new settings dataclass needs nothing else: annotate its fields with these (or with any
``Annotated[..., pydantic.Field(...)]``) and the loader validates it, naming the file and
the key of a bad value. Outside the loader (tests, benchmarks building a dataclass in
code) the annotations cost nothing and check nothing.

Paths: a relative path in a settings file is resolved against the file's folder (the
loader passes it as the validation context ``base_dir``), and it must exist when the file
is loaded, so a typo fails at load time rather than inside a partition run. An empty
string is left as it is for files (the optional word lists read it as "off") and refused
for folders (it would silently mean the current folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo

# A share or a probability.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


def _resolved(value: str, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path.resolve()


def _must_exist(is_kind, kind: str, empty_allowed: bool):
    def check(value: str, info: ValidationInfo) -> str:
        if not value:
            if empty_allowed:
                return value
            # "" would resolve to the current folder; a setting that can be off takes null
            raise ValueError(f"an empty path is not a {kind} (null, where allowed, switches it off)")
        path = _resolved(value, info)
        if not is_kind(path):
            raise ValueError(f"no such {kind}: {path}")
        return str(path)

    return check


# "" is allowed for files: the word lists read it as "off", language ID as "the bundled model".
ExistingFile = Annotated[str, AfterValidator(_must_exist(Path.is_file, "file", empty_allowed=True))]
ExistingDir = Annotated[str, AfterValidator(_must_exist(Path.is_dir, "folder", empty_allowed=False))]

# Dagster keeps a static partition set in memory and lists it in the UI and in every
# backfill; a shard count in the millions makes the code location hang while it builds
# the partitions, so the loader refuses it. 100,000 shards of the usual ~50,000 documents
# each is far beyond one Common Crawl dump (~3 billion pages).
MAX_SHARDS = 100_000
ShardCount = Annotated[int, Field(ge=1, le=MAX_SHARDS)]

NonEmptyStr = Annotated[str, Field(min_length=1)]

# The 176 labels of fastText's lid.176 models (Joulin et al. 2016, "Bag of Tricks";
# https://fasttext.cc/docs/en/language-identification.html), listed here so that the
# settings loader can check language codes without loading the model.
LID176_CODES = frozenset("""
af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce
ceb ckb co cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl
gn gom gu gv he hi hif hr hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc
ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv
mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa
sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz
vec vep vi vls vo wa war wuu xal xmf yi yo yue zh
""".split())


def _lid176_code(value: str) -> str:
    if value not in LID176_CODES:
        raise ValueError(f"{value!r} is not a lid.176 language code (lower case, e.g. 'en', 'de', 'zh')")
    return value


LanguageCode = Annotated[str, AfterValidator(_lid176_code)]
