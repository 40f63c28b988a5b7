"""Export a built training mixture to a plain folder for training and other readers.

In the corpus store a mixture's shards are content-addressed objects
(``shard-00000.<sha>.parquet``) behind the partition's ``_partition.json`` pointer, which
is what makes a publication atomic. Readers outside this project want plain names:

    <dest>/shard-00000.parquet, shard-00000.jsonl.zst, ..., row_ids.parquet, manifest.json

the names the manifest lists, so ``glob("shard-*.parquet")`` is exactly this mixture.

One build, whole: the partition's pointer is read ONCE and every file (manifest included)
is that pointer's object, so a build published while the export runs cannot slip its
shards in beside the older manifest. When the newer publication has already removed an
object the export still needed, the export starts over on the new pointer (once per newer
build). Each file is COPIED (never hard-linked: an export is the user's to edit, and an
edit through a link would change the store's object) into a temporary file, its SHA-256
checked against the pointer.

Never a mix of two exports: every file is first copied into a staging folder beside
``dest`` (``.<dest name>.export-<pid>``), then swapped in. When ``dest`` holds nothing but
an export (shard files, manifest.json), the folders are swapped by two renames (a reader
sees the old export, briefly no folder, or the new one). When it holds other files too,
they stay: the old manifest.json is removed first and ``EXPORT_INCOMPLETE`` written, then
the old shard files are removed, the new ones moved in (renames on one filesystem) and the
manifest last; an interruption there leaves the marker and no manifest, never an old
manifest beside new shards. Exporting into the corpus store's own folder is refused.

    python -m corpus_assets.mixture_export demo_mix exports/demo_mix [--root .corpus]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from corpus_assets.mixture_stages import ROW_IDS, folder
from corpus_assets.storage import CorpusStore, PartitionIntegrityError

SHARD_FILE = re.compile(r"^shard-\d{5,}\.(parquet|jsonl\.zst)$")
MANIFEST = "manifest.json"
INCOMPLETE = "EXPORT_INCOMPLETE"


class MixtureExportError(RuntimeError):
    """The export could not read one whole build (the message says why)."""


def _place(store: CorpusStore, folder_rel: str, entry: dict, dest: Path) -> None:
    """The pointer's object copied to ``dest`` (a copy the user may edit freely), checked
    against the pointer's SHA-256 and size. FileNotFoundError: the object is gone."""
    tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
    try:
        with store._backend.local_copy(f"{folder_rel}/{entry['object']}") as src:
            shutil.copyfile(src, tmp)  # a new file, never a second name of the store's object
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != entry["sha256"] or os.path.getsize(tmp) != entry["bytes"]:
            raise PartitionIntegrityError(
                f"{store.uri(folder_rel)}: {entry['object']} is not the content that was published (SHA-256 differs "
                "from the partition's pointer); re-materialize the mixture")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _export_once(store: CorpusStore, name: str, pointer: dict, dest: Path) -> dict:
    files = pointer["files"]
    if "manifest.json" not in files:
        raise MixtureExportError(f"{store.uri(folder(name))}: the published partition has no manifest.json")
    with store._backend.local_copy(f"{folder(name)}/{files['manifest.json']['object']}") as path:
        data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != files["manifest.json"]["sha256"]:
        raise PartitionIntegrityError(f"{store.uri(folder(name))}: manifest.json is not the content that was published "
                                      "(SHA-256 differs from the partition's pointer); re-materialize the mixture")
    manifest = json.loads(data)
    names = [s[key] for s in manifest["shards"] for key in ("parquet", "jsonl_zst")]
    missing = [n for n in names if n not in files]
    if missing:
        raise MixtureExportError(f"{store.uri(folder(name))}: the manifest names {missing[:3]}, which the published "
                                 "partition does not hold; re-materialize the mixture")
    if ROW_IDS in files:  # each shard's row ids, in row order
        names = names + [ROW_IDS]
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.export-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for file in names + [MANIFEST]:
            _place(store, folder(name), files[file], staging / file)
        _swap_in(staging, dest, names)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _is_export_file(name: str) -> bool:
    return bool(SHARD_FILE.match(name)) or name in (MANIFEST, INCOMPLETE, ROW_IDS)


def _swap_in(staging: Path, dest: Path, names: list[str]) -> None:
    """The staged export becomes ``dest``: whole (old or new) at every moment when
    ``dest`` is only an export, else marked incomplete while its export files change."""
    if not dest.exists():
        os.rename(staging, dest)
        return
    if not dest.is_dir():
        raise MixtureExportError(f"export destination {dest} exists and is not a folder")
    # (a symlinked dest keeps its link: its files are replaced in place)
    if not dest.is_symlink() and all(_is_export_file(p.name) and p.is_file() for p in dest.iterdir()):
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
        os.rename(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
        return
    # Other files live in dest: keep them; the manifest goes first and comes back last.
    (dest / INCOMPLETE).write_text("an export is being replaced; no manifest.json until it is whole\n")
    for old in (MANIFEST, ROW_IDS):
        if (dest / old).exists():
            (dest / old).unlink()
    for stale in dest.iterdir():
        if SHARD_FILE.match(stale.name):
            stale.unlink()
    for file in names:
        os.replace(staging / file, dest / file)
    os.replace(staging / MANIFEST, dest / MANIFEST)
    (dest / INCOMPLETE).unlink()


def _refuse_store_folder(store: CorpusStore, dest: Path) -> None:
    """An export inside the corpus store's folder would be mistaken for (or clobber) its
    objects and be swept by its cleaning."""
    from corpus_assets.storage import is_s3_uri

    if is_s3_uri(store.root):
        return
    root = Path(store.root).resolve()
    target = dest.resolve()
    if target == root or root in target.parents:
        raise MixtureExportError(f"export destination {dest} is inside the corpus store {root}: export to a folder "
                                 "outside it")


def export_mixture(store: CorpusStore, name: str, dest: str | Path, max_restarts: int = 3) -> dict:
    """Copy mixture ``name``'s shards and manifest, all of ONE published build, to ``dest``
    under plain names; returns that build's manifest (its ``shards`` name the files)."""
    dest = Path(dest)
    _refuse_store_folder(store, dest)
    if dest.exists() and not dest.is_dir():
        raise MixtureExportError(f"export destination {dest} exists and is not a folder")
    pointer = store.read_pointer(folder(name))
    if pointer is None:  # first: an unbuilt mixture creates no folder
        raise FileNotFoundError(f"no published mixture {name!r} in {store.uri(folder(name))}")
    for _ in range(max_restarts + 1):
        try:
            return _export_once(store, name, pointer, dest)
        except FileNotFoundError:
            newer = store.read_pointer(folder(name))
            if newer is None or newer["version"] == pointer["version"]:
                raise PartitionIntegrityError(
                    f"{store.uri(folder(name))}: an object of the published mixture (version {pointer['version']}) is "
                    "missing; re-materialize the mixture") from None
            pointer = newer  # a newer build was published (and the old objects cleaned) meanwhile
    raise MixtureExportError(f"mixture {name}: {max_restarts + 1} newer builds were published during the export; "
                             "export again once the builds stop")


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
    except (PartitionIntegrityError, MixtureExportError, ValueError, OSError) as exc:
        # a bad mixture name (refused store path), a destination that cannot be written
        parser.exit(1, f"{exc}\n")
    print(f"{args.dest}: {len(manifest['shards'])} shards (Parquet + JSONL.zst), {manifest['docs']:,} docs, "
          f"{manifest['tokens']:,} tokens, manifest.json")


if __name__ == "__main__":
    main()
