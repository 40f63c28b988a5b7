"""The WebText-style URL allowlist: URLs compared in URL dedup's normal form, hosts in the
URL filter's, counted removals, and settings refused at load with the key named."""

import pytest

from corpus_assets.config import ConfigError, load_config
from corpus_assets.steps.url_allowlist import UrlAllowlist, UrlAllowlistConfig


def _allowlist(tmp_path, lines, **kwargs):
    path = tmp_path / "allow.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return UrlAllowlist(UrlAllowlistConfig(path=str(path), **kwargs))


@pytest.mark.parametrize("url", [
    "https://example.com/a",
    "http://www.example.com/a/",                      # scheme, www., trailing slash
    "HTTPS://EXAMPLE.COM:443/a?utm_source=reddit",    # case, default port, tracking parameter
    "https://example.com/x/../a#comments",            # dot segments, fragment
    "https://example.com/%61",                        # an escaped unreserved character
])
def test_url_mode_matches_in_url_dedups_normal_form(tmp_path, url):
    step = _allowlist(tmp_path, ["# reddit outbound links, >= 3 karma", "http://www.example.com/a?utm_medium=x"])
    assert step.apply({"url": url}) is None


@pytest.mark.parametrize("url", ["https://example.com/b", "https://example.com/a?page=2", "https://other.com/a"])
def test_url_mode_removes_unlisted_urls_with_a_reason(tmp_path, url):
    step = _allowlist(tmp_path, ["https://example.com/a"])
    reason, detail = step.apply({"url": url})
    assert reason == "url_not_allowlisted" and detail.startswith("https://")


def test_host_mode_compares_hosts_in_the_url_filters_normal_form(tmp_path):
    step = _allowlist(tmp_path, ["bücher.de", "https://www.example.org/some/page"], match="host")
    assert step.apply({"url": "https://www.xn--bcher-kva.de/x"}) is None   # IDNA, www.
    assert step.apply({"url": "http://EXAMPLE.org./other"}) is None       # case, trailing dot
    assert step.apply({"url": "https://shop.example.org/"})[0] == "host_not_allowlisted"
    assert step.apply({"url": ""}) == "no_url"


def test_subdomains_only_when_asked_and_never_by_suffix(tmp_path):
    step = _allowlist(tmp_path, ["example.org"], match="host", include_subdomains=True)
    assert step.apply({"url": "https://news.example.org/a"}) is None
    assert step.apply({"url": "https://badexample.org/a"})[0] == "host_not_allowlisted"
    assert step.apply({"url": "https://example.org.evil.net/a"})[0] == "host_not_allowlisted"


def test_an_empty_list_is_refused_not_a_silent_loss_of_every_page(tmp_path):
    with pytest.raises(ValueError, match="url_allowlist.path"):
        _allowlist(tmp_path, ["# only a comment"])


def test_settings_are_checked_at_load(tmp_path):
    settings = tmp_path / "s.yaml"
    settings.write_text("url_allowlist:\n  path: no_such_list.txt\n  match: domain\n")
    with pytest.raises(ConfigError) as err:
        load_config(settings)
    assert "url_allowlist.path" in str(err.value) and "url_allowlist.match" in str(err.value)


def test_rw_raw_keeps_only_allowlisted_pages_and_counts_the_rest(tmp_path, fixture_crawl):
    from corpus_assets import stages
    from corpus_assets.crawl import CrawlSource
    from corpus_assets.storage import CorpusStore

    allow = tmp_path / "allow.txt"
    allow.write_text("news.example.org\n")
    config = load_config(_settings_file(tmp_path, f"num_shards: 1\nurl_allowlist: {{path: {allow}, match: host}}\n"))
    source, store, dump = CrawlSource(str(fixture_crawl)), CorpusStore(str(tmp_path / "corpus")), "CC-MAIN-2024-10"
    stages.build_crawl_manifest(source, store, dump, 1)
    stages.ingest_raw_documents(source, store, dump, "000", config)
    report = stages.build_rw_raw(store, dump, "000", config)
    kept = store.read_table(stages.documents_path("rw_raw", dump, "000")).to_pylist()
    ledger = store.read_table(stages.removed_path("rw_raw", dump, "000")).to_pylist()
    assert kept and all("news.example.org" in row["url"] for row in kept)
    allowlist = next(s for s in report.step_stats if s.step == "url_allowlist")
    assert allowlist.removed_by_reason["host_not_allowlisted"] > 0
    assert allowlist.docs_in == allowlist.docs_out + allowlist.docs_removed
    assert {r["reason"] for r in ledger if r["step"] == "url_allowlist"} == {"host_not_allowlisted"}


def _settings_file(tmp_path, text):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path
