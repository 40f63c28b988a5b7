"""A small crawl the project builds itself, for machines without the shared sample.

Two dumps in Common Crawl's layout (``crawl-data/<DUMP>/warc.paths.gz`` and gzipped WARC
files framed as Common Crawl frames a fetch: request, response, metadata) plus a tiny
UT1-style blocklist. It holds what the stages must handle: English and German articles,
a blocklisted domain, a 404, a PDF, an exact copy under a tracking URL, a re-crawl in the
second dump, a page without main text and a truncated WARC file. Texts are written for
this fixture. Nothing here imports Dagster.
"""

from __future__ import annotations

import gzip
import io
import uuid
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

ARTICLES_EN = [
    (
        "https://news.example.org/science/river-survey",
        "River survey finds cleaner water",
        [
            "A three year survey of the river has found that the water is cleaner than at any time since measurements began. The team took samples every month at twelve places along the bank and tested them for nitrates, phosphates and bacteria.",
            "The biggest change came after the old paper mill closed and the town rebuilt its treatment plant. Fish that had not been seen for decades have returned to the lower reaches, and anglers say that the trout are back in numbers.",
            "The researchers warn that the gains are fragile. Heavy rain still washes fertiliser from the fields into the water, and a single dry summer could undo much of the progress that has been made over the past ten years.",
        ],
    ),
    (
        "https://blog.example.net/cooking/sourdough-at-home",
        "Baking sourdough at home",
        [
            "Sourdough bread needs only flour, water and salt, but it asks for patience. The starter is a living culture of wild yeast and bacteria that you feed every day until it doubles in size within a few hours of feeding.",
            "When the starter is ready, mix it with the flour and water and let the dough rest before you add the salt. Over the next few hours fold the dough every half hour so that it builds strength without heavy kneading.",
            "Shape the loaf, leave it in the fridge overnight and bake it in a very hot covered pot. The slow cold rise gives the crumb its open texture and the crust its deep colour and slightly sour taste that people love.",
        ],
    ),
    (
        "https://www.example.gov/transport/new-timetable",
        "New regional bus timetable",
        [
            "The regional transport authority has published a new timetable that will come into force at the start of next month. Most routes will run every fifteen minutes during the day and every half hour in the evening.",
            "Two rural lines that were cut last year will be restored after residents asked for a way to reach the hospital and the market town without a car. The authority says that it will review the changes after six months of service.",
            "Passengers can buy tickets on their phones or at the machines at each stop, and children under twelve travel free when they are with an adult. Full details of every route are available at the main bus station.",
        ],
    ),
    (
        "https://magazine.example.com/history/old-lighthouse",
        "The story of the old lighthouse",
        [
            "The lighthouse on the northern cape was built in the middle of the nineteenth century after a storm drove three ships onto the rocks in a single night. Its light could be seen more than twenty miles out to sea.",
            "For over a hundred years the keepers and their families lived in the small stone cottages beside the tower. They trimmed the wicks, wound the clockwork that turned the lens and kept a log of every ship that passed.",
            "The light was automated in the nineteen eighties and the last keeper left the cape. Today the cottages are a museum, and on clear evenings visitors can climb the tower and watch the beam sweep across the water.",
        ],
    ),
]

ARTICLE_DE = (
    "https://zeitung.example.de/lokal/neuer-radweg",
    "Neuer Radweg eröffnet",
    [
        "Der neue Radweg zwischen den beiden Nachbargemeinden ist am Wochenende offiziell eröffnet worden. Die Strecke ist rund acht Kilometer lang und führt größtenteils abseits der Bundesstraße durch Felder und kleine Wälder.",
        "Der Bürgermeister sagte bei der Eröffnung, dass viele Schülerinnen und Schüler den Weg künftig sicher mit dem Fahrrad zurücklegen können. Die Kosten wurden zum großen Teil vom Land übernommen.",
    ],
)

BOILERPLATE_PAGE = (
    "https://shop.example.com/cart",
    # A page with a body but no main text (trafilatura returns nothing).
    "<html><head><title>Cart</title></head><body><script>var cart = [];</script></body></html>",
)


def _html(title: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        f"<footer>Copyright example publisher</footer></body></html>"
    )


def _write_fetch(writer: WARCWriter, url: str, status: str, content_type: str, payload: bytes, date: str) -> None:
    """One fetch framed as Common Crawl frames it: request, response, metadata."""
    record_id = f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url + date)}>"
    request = writer.create_warc_record(
        url, "request", payload=io.BytesIO(b""),
        http_headers=StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", url.split('/')[2])], is_http_request=True),
        warc_headers_dict={"WARC-Date": date},
    )
    writer.write_record(request)
    response = writer.create_warc_record(
        url, "response", payload=io.BytesIO(payload),
        http_headers=StatusAndHeaders(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
                                      protocol="HTTP/1.1"),
        warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": record_id},
    )
    writer.write_record(response)
    metadata = writer.create_warc_record(
        url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\r\n"),
        warc_content_type="application/warc-fields", warc_headers_dict={"WARC-Date": date},
    )
    writer.write_record(metadata)


def _write_warc(path: Path, fetches: list[tuple[str, str, str, bytes]], date: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "corpus_assets fixture"}))
        for url, status, ctype, payload in fetches:
            _write_fetch(writer, url, status, ctype, payload, date)


def build_fixture_crawl(root: str | Path) -> Path:
    """Write the fixture crawl under ``root`` (returned); idempotent."""
    root = Path(root)
    ok = "200 OK"
    html = "text/html; charset=utf-8"
    pages = [(url, ok, html, _html(t, ps).encode()) for url, t, ps in ARTICLES_EN]
    de_url, de_title, de_ps = ARTICLE_DE
    dump1 = {
        0: pages[:2] + [(de_url, ok, "text/html", _html(de_title, de_ps).encode("utf-8"))],
        1: pages[2:] + [
            (pages[0][0] + "?utm_source=feed", ok, html, pages[0][3]),
            ("https://casino-jackpot.example-bets.com/play", ok, html, pages[1][3]),
            ("https://news.example.org/missing", "404 Not Found", html, b"<html><body>Not found</body></html>"),
            ("https://www.example.gov/report.pdf", ok, "application/pdf", b"%PDF-1.4 fixture"),
            (BOILERPLATE_PAGE[0], ok, html, BOILERPLATE_PAGE[1].encode()),
        ],
    }
    dump2 = {
        0: [pages[0], pages[3]],
        1: [pages[2]],
    }
    for dump, files, date in (("CC-MAIN-2024-10", dump1, "2024-02-20T08:00:00Z"),
                              ("CC-MAIN-2024-18", dump2, "2024-04-12T08:00:00Z")):
        rels = []
        for i, fetches in files.items():
            rel = f"crawl-data/{dump}/segments/0000000000000.00/warc/{dump}-fixture-{i:05d}.warc.gz"
            _write_warc(root / rel, fetches, date)
            rels.append(rel)
        with gzip.open(root / f"crawl-data/{dump}/warc.paths.gz", "wt") as fh:
            fh.write("\n".join(rels) + "\n")
    # The second dump's last file is cut short, like an interrupted download.
    last = root / "crawl-data/CC-MAIN-2024-18/segments/0000000000000.00/warc/CC-MAIN-2024-18-fixture-00001.warc.gz"
    data = last.read_bytes()
    last.write_bytes(data[: int(len(data) * 0.6)])
    blocklist = root / "blocklists" / "ut1" / "gambling"
    blocklist.mkdir(parents=True, exist_ok=True)
    (blocklist / "domains").write_text("example-bets.com\n")
    # Settings for this crawl: the bundled defaults plus the fixture's blocklist.
    (root / "pipeline.yaml").write_text("num_shards: 2\nurl_filter:\n  blocklist_dir: blocklists/ut1\n  blocklist_categories: [gambling]\n")
    return root
