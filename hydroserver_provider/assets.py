"""HydroServer datastreams as Airflow assets, and the names OpenLineage gives sources and
datastreams.

A datastream is the asset ``hydroserver://<host>/datastreams/<datastream id>``, where ``<host>``
is the HydroServer's host (and port, when not the scheme's default), read from the Airflow
connection at run time. The asset's name is its URI, so a DAG scheduled on
``Asset("hydroserver://<host>/datastreams/<id>")`` (or :func:`datastream_asset`) is the consumer
of exactly the asset the ingest task emits events for. (Airflow 3 identifies an asset by name
*and* URI and keeps one active asset per URI: an asset emitted under any other name would be a
second asset, and the consumer would never run.)

The ingest task declares one :class:`AssetAlias` (:func:`datastream_alias`) and, when a run
wrote rows, adds the asset of each datastream that received them, with :func:`event_extra`.

The provider registers the ``hydroserver`` scheme with Airflow (``asset-uris`` in
``get_provider_info``): :func:`sanitize_uri` checks and normalises every such URI, wherever an
``Asset`` is made; :func:`create_asset` is its factory; :func:`convert_asset_to_openlineage`
names the dataset for OpenLineage.

Everything here is plain Python except the three functions that build Airflow or OpenLineage
objects, which import them when called: this module is imported by Airflow whenever an asset
URI is parsed, so it stays light.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias

__all__ = [
    "SCHEME",
    "alias_name",
    "changed_datastreams",
    "convert_asset_to_openlineage",
    "create_asset",
    "datastream_alias",
    "datastream_asset",
    "datastream_uri",
    "event_extra",
    "hydroserver_host",
    "hydrocron_dataset",
    "merge_extra",
    "output_dataset",
    "sanitize_uri",
    "source_dataset",
    "source_lineage_url",
]

SCHEME = "hydroserver"
"""The URI scheme of HydroServer datastream assets."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_DATASTREAM_PATH = re.compile(r"/datastreams/([^/?#]+)\Z")
_SECRET_SHOWN = "***"


# -- URIs and names -----------------------------------------------------------------------------


def hydroserver_host(url: str) -> str:
    """The host of a HydroServer URL as asset URIs name it: lower case, without credentials,
    with the port only when it is not the scheme's default (``https://HS.example.org:443/`` ->
    ``hs.example.org``; ``http://127.0.0.1:8000`` -> ``127.0.0.1:8000``)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"expected a HydroServer URL such as https://hydroserver.example.org, "
                         f"found {url!r}")
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the HydroServer URL {url!r} has an invalid port") from None
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


def datastream_uri(host: str, datastream_id: str) -> str:
    """``hydroserver://<host>/datastreams/<datastream id>`` (checked by :func:`sanitize_uri`)."""
    uri = f"{SCHEME}://{host}/datastreams/{datastream_id}"
    return sanitize_uri(urlsplit(uri)).geturl()


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """The ``asset-uris`` handler of the ``hydroserver`` scheme: Airflow calls it (after its
    own normalisation: scheme in lower case, no password, fragment or trailing slash) for every
    ``Asset`` with such a URI, in DAG files too. Accepts only
    ``hydroserver://<host>/datastreams/<id>``; the host is put in lower case."""
    expected = "expected hydroserver://<HydroServer host>/datastreams/<datastream id>"
    if not uri.netloc:
        raise ValueError(f"{expected}: the URI names no host")
    if "@" in uri.netloc:
        raise ValueError(f"{expected}: the host must not carry credentials")
    if uri.query:
        raise ValueError(f"{expected}: found a query ({uri.query!r})")
    if not _DATASTREAM_PATH.fullmatch(uri.path):
        raise ValueError(f"{expected}: found the path {uri.path!r}")
    return uri._replace(netloc=uri.netloc.lower(), fragment="")


def alias_name(dag_id: str, task_id: str) -> str:
    """The name of the asset alias an ingest task declares as its outlet."""
    return f"hydroserver-datastreams:{dag_id}.{task_id}"


# -- Airflow objects (imported when called) -----------------------------------------------------


def datastream_asset(host: str, datastream_id: str) -> Asset:
    """The asset of one datastream: ``schedule=[datastream_asset("hs.example.org", "<id>")]``
    makes a DAG run when an ingest task loaded rows into it. Same as
    ``Asset("hydroserver://hs.example.org/datastreams/<id>")``."""
    from hydroserver_provider.compat import Asset

    uri = datastream_uri(host, datastream_id)
    return Asset(name=uri, uri=uri)


def create_asset(*, host: str, datastream_id: str, extra: dict | None = None) -> Asset:
    """The ``asset-uris`` factory of the ``hydroserver`` scheme (keyword arguments)."""
    from hydroserver_provider.compat import Asset

    uri = datastream_uri(host, datastream_id)
    return Asset(name=uri, uri=uri, extra=extra)


def datastream_alias(dag_id: str, task_id: str) -> AssetAlias:
    """The outlet of an ingest task: events are added to it per run, for the datastreams that
    received rows (see :func:`changed_datastreams`)."""
    from hydroserver_provider.compat import AssetAlias

    return AssetAlias(name=alias_name(dag_id, task_id))


# -- what a run announces -----------------------------------------------------------------------


def changed_datastreams(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The datastreams of a run summary whose stored rows this run changed: rows written (new
    or revised) or, for a window the run owns, rows removed -- also by a datastream that failed
    afterwards (its rows up to the failure are stored). None for a dry run."""
    if summary.get("dry_run"):
        return []
    return [d for d in summary.get("datastreams") or () if d.get("loaded") or d.get("removed")]


def event_extra(outcome: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``extra`` of a datastream's asset event: what a consumer needs to read the new rows.

    ``rows_loaded`` (new or revised rows written), ``rows_revised``, ``rows_removed``;
    ``first_timestamp`` / ``last_timestamp``: the span of source rows the run covered for this
    datastream (UTC, ISO 8601; every row it wrote lies in it); the run's ``mode`` and
    ``window``. Nothing secret: no URL, no variable.
    """
    return {
        "datastream_id": outcome["datastream_id"],
        "datastream_name": outcome.get("name"),
        "source_identifier": outcome.get("source_identifier"),
        "rows_loaded": int(outcome.get("loaded") or 0),
        "rows_revised": int(outcome.get("revised") or 0),
        "rows_removed": int(outcome.get("removed") or 0),
        "first_timestamp": outcome.get("first"),
        "last_timestamp": outcome.get("last"),
        "mode": outcome.get("mode") or summary.get("mode"),
        "window": ({k: window[k] for k in ("start", "end")}
                   if (window := summary.get("window")) else None),
    }


def merge_extra(earlier: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """One event's ``extra`` for a datastream that received rows in two attempts of one task
    instance (a failed try, then its retry): the rows added up, the span widened."""
    merged = {**earlier, **later}
    for key in ("rows_loaded", "rows_revised", "rows_removed"):
        merged[key] = int(earlier.get(key) or 0) + int(later.get(key) or 0)
    firsts = [t for t in (earlier.get("first_timestamp"), later.get("first_timestamp")) if t]
    lasts = [t for t in (earlier.get("last_timestamp"), later.get("last_timestamp")) if t]
    merged["first_timestamp"] = min(firsts) if firsts else None  # ISO 8601 UTC: sortable
    merged["last_timestamp"] = max(lasts) if lasts else None
    return merged


# -- OpenLineage --------------------------------------------------------------------------------


def source_lineage_url(source_url: str, values: Mapping[str, Any],
                       secret_names: Iterable[str]) -> str:
    """A source's stable identity for lineage: its URL template with the task's own values
    filled in (``{site}`` -> ``09380000``), every secret shown as ``***`` (secret placeholders,
    secret-looking query values, a password), and the run's dates left as placeholders
    (``{start}``), so every run of a task reads the same dataset."""
    from hydroserver_provider.definitions.checks import PLACEHOLDER, safe_url

    secret = set(secret_names)

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name in secret:
            return _SECRET_SHOWN
        if name in values and values[name] not in (None, ""):
            return quote(str(values[name]), safe="-_.~:")
        return match.group(0)

    return safe_url(PLACEHOLDER.sub(fill, source_url))


def source_dataset(url: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a source URL (already redacted): the namespace is
    ``scheme://host[:port]`` (``file`` for a local file), the name its path and query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower() or "file"
    netloc = parts.netloc.rpartition("@")[2].lower()
    name = parts.path or "/"
    if parts.query:
        name = f"{name}?{parts.query}"
    if scheme == "file":
        return ("file" if not netloc else f"file://{netloc}"), name
    return f"{scheme}://{netloc}", name


def hydrocron_dataset(base_url: str, hydrocron: Mapping[str, Any]) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of the Hydrocron time series a run read: the
    endpoint's host, and ``<path>/timeseries?collection_name=..&feature=..&feature_id=..``."""
    parts = urlsplit(base_url)
    query = "&".join(f"{key}={quote(str(value), safe='-_.~')}" for key, value in (
        ("collection_name", hydrocron.get("collection")), ("feature", hydrocron.get("feature")),
        ("feature_id", hydrocron.get("feature_id"))) if value)
    name = f"{parts.path.rstrip('/')}/timeseries" + (f"?{query}" if query else "")
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}", name


def output_dataset(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a datastream asset URI:
    ``("hydroserver://<host>", "datastreams/<id>")``."""
    parts = urlsplit(uri)
    return f"{SCHEME}://{parts.netloc}", parts.path.lstrip("/")


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """The ``asset-uris`` OpenLineage converter of the ``hydroserver`` scheme."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = output_dataset(asset.uri)
    return Dataset(namespace=namespace, name=name)
