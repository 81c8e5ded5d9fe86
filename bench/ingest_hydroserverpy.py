"""hydroserverpy's side of the ingestion benchmark, run with the interpreter of its own virtualenv.

    bench/.work/hydroserverpy-venv/bin/python bench/ingest_hydroserverpy.py COMMAND JSON

Same commands and answers as ``ingest_ours.py``. Only hydroserverpy's classes are called, with
their default settings, in the order HydroServer's task runner uses them: an ``HTTPExtractor``, the
``CSVTransformer``, the ``HydroServerLoader`` (default 5,000-row chunks), the loaded-through time
of every target read first to fill the ``latestObservationTimestamp`` placeholder, then
``ETLPipeline.run``. (hydroserverpy 1.12.2's own ``etl.hydroserver.build_hydroserver_pipeline``
cannot be imported: it asks ``hydroserverpy.api.models`` for a ``Task`` that no longer exists.)
This file imports nothing from this project: the layout of the input file comes in the arguments.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

from hydroserverpy import HydroServer
from hydroserverpy.etl import ETLPipeline
from hydroserverpy.etl.extractors import HTTPExtractor
from hydroserverpy.etl.loaders import HydroServerLoader
from hydroserverpy.etl.models import Timestamp
from hydroserverpy.etl.transformers import CSVTransformer, ETLDataMapping, ETLTargetPath
from ingest_measure import emit, peak_rss_mib, read_args, rss_mib


def _transformer(layout: dict) -> CSVTransformer:
    return CSVTransformer(
        timestamp_key=layout["timestamp_key"], header_row=layout["header_row"],
        data_start_row=layout["data_start_row"], delimiter=",", identifier_type="name",
        timestamp_type="custom", timestamp_format=layout["timestamp_format"],
        timezone_type="iana", timezone=layout["zone"],
    )


def _mappings(pairs: list[list[str]]) -> list[ETLDataMapping]:
    """(source column, target) pairs -> one mapping per column with a path per target."""
    targets: dict[str, list[str]] = {}
    for column, target in pairs:
        targets.setdefault(column, []).append(target)
    return [ETLDataMapping(source_identifier=column,
                           target_paths=[ETLTargetPath(target_identifier=t) for t in paths])
            for column, paths in targets.items()]


def _transform(path: str, layout: dict):
    # What HTTPExtractor hands the transformer: the whole body in a BytesIO.
    with open(path, "rb") as handle:
        payload = io.BytesIO(handle.read())
    pairs = [[column, f"target-{i}"] for i, column in enumerate(layout["columns"])]
    return _transformer(layout).transform(payload, _mappings(pairs))


def parse(args: dict) -> dict:
    base = rss_mib()
    began, cpu = time.perf_counter(), time.process_time()
    frame = _transform(args["path"], args["layout"])
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    stored = frame.groupby("target_id").size().to_dict()
    return {"seconds": seconds, "cpu_seconds": cpu, "rows": args["rows"], "base_mib": base,
            "peak_mib": peak_rss_mib(),
            "stored_per_series": {str(k): int(v) for k, v in stored.items()}}


class _Capture:
    """Stands in for the HTTP round trip so only the body building is timed."""

    def __init__(self) -> None:
        self.bytes = 0
        self.bodies = 0
        self.example = ""

    def request(self, method, path, *args, **kwargs):
        body = kwargs["data"]
        self.bytes += len(body)
        self.bodies += 1
        self.example = self.example or body[:120]


def serialize(args: dict) -> dict:
    """hydroserverpy's per-chunk body building, as its loader drives it, without the network."""
    frame = _transform(args["path"], args["layout"])
    client = HydroServer(host="http://127.0.0.1:9", apikey="not-sent")
    capture = _Capture()
    client.request = capture.request  # the service builds the body, then calls this
    chunk = HydroServerLoader.model_fields["chunk_size"].default
    uploads = [group[["timestamp", "value"]]
               .rename(columns={"timestamp": "phenomenon_time", "value": "result"})
               for _, group in frame.groupby("target_id", sort=False)]
    began, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for upload in uploads:
        for start in range(0, len(upload), chunk):
            part = upload.iloc[start:start + chunk]
            client.datastreams.load_observations(uid="00000000-0000-0000-0000-000000000000",
                                                 observations=part, mode="append")
        rows += len(upload)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "bytes": capture.bytes, "rows": rows,
            "bodies": capture.bodies, "example": capture.example}


def run(args: dict) -> dict:
    layout = args["layout"]
    began = time.perf_counter()
    client = HydroServer(host=args["url"], apikey=args["api_key"])
    loader = HydroServerLoader(client=client)
    # The runner fills latestObservationTimestamp from every target before extracting.
    targets = [target for _, target in args["mappings"]]
    loaded_through = loader.earliest_loaded_through(target_identifiers=targets)
    start = loaded_through or datetime(1970, 1, 1, tzinfo=UTC)
    url_time = Timestamp(timestamp_type="custom", timestamp_format="%Y-%m-%dT%H:%M:%SZ",
                         timezone_type="utc")
    pipeline = ETLPipeline(extractor=HTTPExtractor(source_uri=args["source_url"]),
                           transformer=_transformer(layout), loader=loader)
    context = pipeline.run(_mappings(args["mappings"]), raise_on_error=False,
                           start=url_time.to_string(start))
    seconds = time.perf_counter() - began
    results = context.results
    return {"seconds": seconds, "status": str(context.status),
            "loaded": results.values_loaded_total if results else 0,
            "error": str(context.exception) if context.exception else None,
            "peak_mib": peak_rss_mib()}


if __name__ == "__main__":
    command, arguments = read_args()
    emit({"parse": parse, "serialize": serialize, "run": run}[command](arguments))
