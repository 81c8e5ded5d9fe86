"""Fetching sources over real local HTTP: retries, errors, HTML pages, gzip, size limits."""

from __future__ import annotations

import gzip

import pytest

from hydroserver_provider.errors import SourceError
from hydroserver_provider.retries import RetryPolicy
from hydroserver_provider.sources.fetch import SourceRequest, open_source
from hydroserver_provider.testing.sources import LocalSourceServer

FAST = RetryPolicy(tries=3, backoff=0.01, max_delay=0.02)
CSV = "time,value\n2024-01-01T00:00:00Z,1.5\n"


@pytest.fixture
def source():
    with LocalSourceServer() as server:
        yield server


def fetch(url: str, **kwargs) -> bytes:
    with open_source(SourceRequest(url=url, retry=FAST, **kwargs)) as stream:
        return stream.read()


def test_streams_the_body(source):
    url = source.add("/a.csv", CSV)
    assert fetch(url) == CSV.encode()


def test_503_then_200_is_retried(source):
    url = source.add("/a.csv", CSV)
    source.fail_next("/a.csv", times=2, status=503)
    assert fetch(url) == CSV.encode()
    assert len(source.requests_to("/a.csv")) == 3


def test_persistent_503_fails_with_status_and_body(source):
    url = source.add("/a.csv", CSV)
    source.fail_next("/a.csv", times=5, status=503, body="upstream maintenance")
    with pytest.raises(SourceError) as info:
        fetch(url)
    assert info.value.status == 503
    assert "HTTP 503" in str(info.value) and "upstream maintenance" in str(info.value)
    assert len(source.requests_to("/a.csv")) == FAST.tries


def test_404_is_not_retried_and_names_the_url(source):
    with pytest.raises(SourceError, match=r"answered HTTP 404") as info:
        fetch(source.url + "/missing.csv")
    assert "/missing.csv" in str(info.value)
    assert len(source.requests_to("/missing.csv")) == 1


def test_html_error_page_is_recognised(source):
    page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>"
    url = source.add("/login.csv", page, content_type="text/html; charset=utf-8")
    with pytest.raises(SourceError, match="HTML page where CSV or JSON") as info:
        fetch(url)
    assert "Sign in" in str(info.value)


def test_html_body_with_a_csv_content_type_is_recognised(source):
    url = source.add("/proxy.csv", "<html><body>502 Bad Gateway</body></html>", content_type="text/csv")
    with pytest.raises(SourceError, match="HTML page"):
        fetch(url)


def test_gzip_content_encoding_is_decoded(source):
    url = source.add("/z.csv", CSV, gzip_body=True)
    assert fetch(url) == CSV.encode()


def test_size_limit_refuses_a_larger_source(source):
    url = source.add("/big.csv", "x" * 10_000)
    with pytest.raises(SourceError, match="larger than the configured limit of 1,000 bytes"):
        fetch(url, max_bytes=1000)


def test_auth_header_is_sent(source):
    url = source.add("/a.csv", CSV)
    fetch(url, headers=(("X-Token", "s3cret-value"),))
    assert source.requests_to("/a.csv")[0].headers["X-Token"] == "s3cret-value"


def test_file_urls_and_gzip_files(tmp_path):
    plain = tmp_path / "station data.csv"
    plain.write_text(CSV)
    assert fetch(plain.as_uri()) == CSV.encode()
    packed = tmp_path / "station.csv.gz"
    packed.write_bytes(gzip.compress(CSV.encode()))
    assert fetch(packed.as_uri()) == CSV.encode()
    with pytest.raises(SourceError, match="no such file"):
        fetch((tmp_path / "nope.csv").as_uri())


def test_unsupported_scheme():
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://example.org/data.csv")


def test_errors_show_the_redacted_url(source):
    with (
        pytest.raises(SourceError) as info,
        open_source(SourceRequest(url=source.url + "/x.csv?token=abc123",
                                  redacted_url=source.url + "/x.csv?token=***", retry=FAST)),
    ):
        pass
    assert "abc123" not in str(info.value) and "token=***" in str(info.value)
