"""A cheap structural check of a page's HTML before anything parses it.

Parsing time is not linear in the size of a page. An HTML5 tree builder, at every block
start tag (``<div>``, ``<ul>``, ``<li>``, ``<section>``...), looks down its stack of open
elements (the "has an element in scope" steps of the HTML Standard), so a page of N
unclosed or nested block tags costs about N^2/2 stack steps: a 1 MB page of 200,000
unclosed ``<div>`` took 90 s in lexbor (the language pre-screen's parser), 40,000 of them
6 s. trafilatura, on lxml, is not quadratic there but slow on sheer element count (80,000
empty ``<div>`` blocks: 8 s). One such page per shard wrecks throughput.

A time limit cannot bound it: lexbor is one C call that a Python signal cannot interrupt
(a SIGALRM set to 0.5 s fired after 7.8 s, when the parse returned), signals only work in
a process's main thread, and a limit in seconds would make the output depend on the
machine's speed, where the pipeline promises the same output bytes for the same input.
So the guard measures the page's structure instead, deterministically, before parsing:

* ``too_many_tags``: more than ``max_tags`` tags (``<`` followed by a letter or ``/``);
* ``too_many_attributes``: one tag with more than ``max_tag_attributes`` attributes.
  lexbor and trafilatura check each new attribute of an element against the ones before
  (duplicates), so one ``<div>`` of 50,000 attributes took 10-60 s. A tag of K attributes
  is at least 2K characters long, so only tags that long are counted (quoted values
  removed first, so spaces inside a long ``style`` or ``data-`` value do not count);
  the most in one tag on the sample crawl and real WARCs is 284, the default limit 2,000;
* ``too_deeply_nested``: the scan's estimate of the tree builder's work, the sum over all
  start tags of how many elements are open around each one, exceeds ``max_nesting_work``.
  The scan does not count void elements (``<br>``, ``<img>``...) nor elements whose end
  tag is optional (``<p>``, ``<li>``, ``<td>``...; but ``<option>`` counts: lexbor was
  near-quadratic on a ``<select>`` of 45,000 unclosed options), and lets an end tag close one
  element. It over-counts unclosed inline tags (``<font>``, which lexbor handles
  cheaply) and tags written inside scripts, which is why the limit sits far above real
  pages: the most on the sample crawl and the real WARCs of ../shared/data is 1.3
  million, the default limit 20 million (about 0.15 s of lexbor on the worst shape of
  page).

Cost: one ``str.count("<")`` and one ``str.split("<")`` for an ordinary page (0.5 ms on
average on the sample's pages); the regex scans run only on pages
with more ``<`` than the limits could be reached with, since N tags hold at most
N^2/2 units of nesting work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from corpus_assets.steps.base import Document, Step, html_of
from corpus_assets.steps.setting_types import PositiveInt


@dataclass(frozen=True)
class HtmlGuardConfig:
    """Settings of :class:`HtmlGuard` (the ``html_guard`` section).

    max_tags: remove pages with more tags than this (``too_many_tags``); None = no limit.
    max_tag_attributes: remove pages with a tag of more attributes than this
        (``too_many_attributes``); None = no limit.
    max_nesting_work: remove pages whose estimated nesting work (see the module
        docstring) exceeds this (``too_deeply_nested``); None = no limit. 20 million is
        ~0.15 s of lexbor on the worst shape of page.
    """

    max_tag_attributes: Optional[PositiveInt] = 2_000
    # 30,000: 49,000 flat <td> or <li> took trafilatura 10-14 s; the sample's largest page
    # has 19,617 tags.
    max_tags: Optional[PositiveInt] = 30_000
    max_nesting_work: Optional[PositiveInt] = 20_000_000


# A tag start: "<" then a letter (start tag) or "/" and a letter (end tag).
_TAG_START = re.compile(r"</?[A-Za-z]")
# Elements that never hold others, and elements an HTML5 parser closes on its own when a
# sibling starts (optional end tags): neither deepens the tree as the scan sees it.
_NOT_NESTING = (
    "area base basefont bgsound br col embed frame hr image img input keygen link meta "
    "param source track wbr "
    "p li dt dd tr td th thead tbody tfoot colgroup caption rb rp rt rtc "
    "html head body"
).split()
# The nesting scan: each start or end tag of an element that nests yields one character,
# "/" for an end tag, the name's first letter for a start tag. Tags inside comments and
# scripts are counted too: skipping them made the scan five times slower, and what they
# add (template strings, commented-out markup) is mostly balanced.
_NEST_SCAN = re.compile(
    rf"<(?!/?(?:{'|'.join(_NOT_NESTING)})[\s/>])(/(?=[A-Za-z])|[A-Za-z])", re.IGNORECASE
)
_SLASH = ord("/")
# Attribute names inside one tag, once quoted values are removed.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_ATTRIBUTE = re.compile(r"[\s/]+[^\s=/>\"']")


def most_attributes(html: str, at_least: int) -> int:
    """The most attributes in one tag of ``html``, counting only tags long enough to
    hold ``at_least`` of them (one space and one letter each); 0 when none is.

    ``str.split`` on "<" (in C) finds the long stretches; a regex over the whole page
    made the guard five times slower on ordinary pages."""
    min_chars = 2 * at_least
    most = 0
    for piece in html.split("<"):
        if len(piece) < min_chars or not piece[:1].isascii() or not piece[:1].isalpha():
            continue
        tag = piece.split(">", 1)[0]
        if len(tag) >= min_chars:
            most = max(most, len(_ATTRIBUTE.findall(_QUOTED.sub("", tag))))
    return most


def nesting_work(html: str) -> int:
    """Sum, over the start tags of nesting elements in ``html``, of the elements the scan
    sees open around each: its estimate of an HTML5 tree builder's scope-walking work.

    Vectorized: the tags become a +1/-1 sequence whose running sum, held at zero or above
    (an end tag with nothing open closes nothing), is the depth before each tag."""
    marks = "".join(_NEST_SCAN.findall(html)).encode("ascii")
    if not marks:
        return 0
    steps = np.where(np.frombuffer(marks, dtype=np.uint8) == _SLASH, -1, 1).astype(np.int64)
    running = np.cumsum(steps)
    # A walk that ignores steps below zero is the free walk minus its running minimum
    # (when that minimum is below zero).
    depth_after = running - np.minimum(np.minimum.accumulate(running), 0)
    depth_before = np.concatenate(([0], depth_after[:-1]))
    return int(depth_before[steps > 0].sum())


class HtmlGuard(Step):
    """Remove pages whose structure would make parsing them take seconds or minutes,
    before the language pre-screen and extraction parse them.

    Reasons: ``too_many_tags`` (detail: the count and the limit), ``too_many_attributes``,
    ``too_deeply_nested``
    (detail: the estimated nesting work and the limit)."""

    name = "html_guard"
    chars_in_field = "html"
    chars_out_field = "html"

    def __init__(self, config: HtmlGuardConfig = HtmlGuardConfig()):
        self.config = config

    def check(self, html: str):
        """None (parse it) or (reason, detail)."""
        c = self.config
        if c.max_tag_attributes is not None:
            attributes = most_attributes(html, c.max_tag_attributes)
            if attributes > c.max_tag_attributes:
                return "too_many_attributes", f"{attributes} attributes in one tag > {c.max_tag_attributes}"
        # Every tag starts with "<", so this bound is free and settles ordinary pages.
        bound = html.count("<")
        if c.max_tags is not None and bound > c.max_tags:
            # subn counts in C without building a list of a million matches
            tags = _TAG_START.subn("", html)[1]
            if tags > c.max_tags:
                return "too_many_tags", f"{tags} tags > {c.max_tags}"
            bound = tags
        # N tags can hold at most N*(N-1)/2 units of nesting work.
        if c.max_nesting_work is not None and bound * (bound - 1) // 2 > c.max_nesting_work:
            work = nesting_work(html)
            if work > c.max_nesting_work:
                return "too_deeply_nested", f"nesting work {work} > {c.max_nesting_work}"
        return None

    def apply(self, doc: Document):
        return self.check(html_of(doc))
