"""Export a built training mixture to a plain folder for training and other readers.

In the corpus store a mixture's shards are content-addressed objects
(``shard-00000.<sha>.parquet``) behind the partition's ``_partition.json`` pointer, which
is what makes a publication atomic. Readers outside this project want plain names:

    <dest>/shard-00000.parquet, shard-00000.jsonl.zst, ..., manifest.json

the names the manifest lists, so ``glob("shard-*.parquet")`` is exactly this mixture.
Each file is the store's current object, its SHA-256 checked against the pointer on the
way (hard-linked when the store is a local folder on the same file system, else copied).
Shard files in ``dest`` that the manifest does not name (an older, larger export) are
removed; nothing else there is touched.

    python -m corpus_assets.mixture_export demo_mix exports/demo_mix [--root .corpus]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from corpus_assets.mixture_stages import folder, manifest_path
from corpus_assets.storage import CorpusStore

SHARD_FILE = re.compile(r"^shard-\d{5}\.(parquet|jsonl\.zst)$")


def _place(src: str, dest: Path) -> None:
    tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or a downloaded copy about to be deleted
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def export_mixture(store: CorpusStore, name: str, dest: str | Path) -> dict:
    """Copy mixture ``name``'s shards and manifest to ``dest`` under plain names; returns
    the manifest (its ``shards`` name the exported files)."""
    manifest = store.read_json(manifest_path(name))  # first: an unbuilt mixture creates no folder
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    names = [s[key] for s in manifest["shards"] for key in ("parquet", "jsonl_zst")]
    for file in names + ["manifest.json"]:  # the manifest last: an export with one is whole
        # The store's checked local copy of the object (an S3 store downloads it).
        with store._open_copy(f"{folder(name)}/{file}", verify=True) as (path, _):
            _place(path, dest / file)
    for stale in dest.iterdir():
        if SHARD_FILE.match(stale.name) and stale.name not in names:
            stale.unlink()
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mixture", help="the mixture (partition) name, e.g. demo_mix")
    parser.add_argument("dest", help="a local folder")
    parser.add_argument("--root", default=os.environ.get("CORPUS_ROOT", ".corpus"),
                        help="the corpus store root (default: $CORPUS_ROOT, else .corpus)")
    args = parser.parse_args(argv)
    try:
        manifest = export_mixture(CorpusStore(args.root), args.mixture, args.dest)
    except FileNotFoundError as exc:
        parser.exit(1, f"{exc}\n(is {args.mixture!r} built? materialize training_mixture for it first)\n")
    print(f"{args.dest}: {len(manifest['shards'])} shards (Parquet + JSONL.zst), {manifest['docs']:,} docs, "
          f"{manifest['tokens']:,} tokens, manifest.json")


if __name__ == "__main__":
    main()
