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
