"""The Kinesis client of ``kinesis_consumer`` (boto3's ``kinesis`` client, extra ``flow-beam[kinesis]``): list the
shards, open a shard iterator at a position, read pages of records, put records (tests and tools).

A position where a shard is read from is a :class:`Start`: ``TRIM_HORIZON`` (the oldest record kept), ``LATEST``
(records arriving after the iterator is made) or ``AFTER_SEQUENCE_NUMBER`` (a checkpoint: the last record already
loaded). Sequence numbers are decimal strings that grow within a shard; they are compared as integers.

Locally ``bash scripts/kinesis.sh start`` runs kinesalite; ``eval "$(bash scripts/kinesis.sh env)"`` exports
``FLOW_BEAM_KINESIS_ENDPOINT`` and the AWS_* variables boto3 reads. Every failure is a ConnectorError naming the
stream and endpoint and saying what to do.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ir_compiler.errors import ConnectorError, MissingDependencyError

START_HINT = 'start it with `bash scripts/kinesis.sh start && eval "$(bash scripts/kinesis.sh env)"`'
MAX_LIMIT = 10000  # GetRecords returns at most 10,000 records per call


@dataclass(frozen=True)
class Start:
    """Where a shard is read from: ``kind`` TRIM_HORIZON, LATEST or AFTER_SEQUENCE_NUMBER (``sequence`` set)."""

    kind: str
    sequence: str | None = None


@dataclass(frozen=True)
class Shard:
    shard_id: str
    index: int  # the number in shardId-NNNNNNNNNNNN (stable across reshards: new shards get new numbers)
    ending_sequence: str | None = None  # set for a closed shard (after a split or merge)


def endpoint_of(cfg) -> str:
    return cfg.endpoint or "AWS"


def client(cfg):
    """A boto3 Kinesis client for the config (region from ``region``, AWS_REGION or AWS_DEFAULT_REGION; with an
    ``endpoint`` and no region, us-east-1)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingDependencyError("the kinesis_consumer connector needs boto3: pip install 'flow-beam[kinesis]'") \
            from None
    region = cfg.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or (
        "us-east-1" if cfg.endpoint else None)
    if not region:
        raise ConnectorError(f"Kinesis stream {cfg.streamName!r}: no AWS region; set config.region or AWS_REGION")
    conf = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return boto3.client("kinesis", region_name=region, endpoint_url=cfg.endpoint or None, config=conf)


def error(cfg, exc: Exception, doing: str) -> ConnectorError:
    """A boto3/botocore failure as one clear ConnectorError."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    name = type(exc).__name__
    where = f"Kinesis stream {cfg.streamName!r} at {endpoint_of(cfg)}"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return ConnectorError(f"cannot reach {where} while {doing}: is it running? {START_HINT}")
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return ConnectorError(f"{where}: no AWS credentials while {doing}: set AWS_ACCESS_KEY_ID and "
                              f"AWS_SECRET_ACCESS_KEY (any values for kinesalite)")
    if code == "ResourceNotFoundException":
        return ConnectorError(f"{where} does not exist (or its shard is gone) while {doing}: create it first")
    msg = getattr(exc, "response", {}).get("Error", {}).get("Message") if hasattr(exc, "response") else str(exc)
    return ConnectorError(f"{where}: {doing} failed ({code or name}: {msg or exc})")


def _call(cfg, fn, doing: str, **kwargs):
    """One API call, retried (bounded) when throttled; other failures become ConnectorErrors."""
    delay = 0.2
    for attempt in range(8):
        try:
            return fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - botocore raises its own tree
            code = exc.response.get("Error", {}).get("Code") if hasattr(exc, "response") else None
            if code in ("ProvisionedThroughputExceededException", "LimitExceededException") and attempt < 7:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if code == "ExpiredIteratorException":
                raise
            raise error(cfg, exc, doing) from None
    raise AssertionError("unreachable")


def list_shards(cfg, kinesis=None) -> list[Shard]:
    """Every shard of the stream (open and closed ones still kept), ordered by shard id."""
    kinesis = kinesis or client(cfg)
    out, token = [], None
    while True:
        kw = {"NextToken": token} if token else {"StreamName": cfg.streamName}
        page = _call(cfg, kinesis.list_shards, "listing its shards", **kw)
        for s in page.get("Shards", []):
            ending = s.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            out.append(Shard(s["ShardId"], shard_index(s["ShardId"]), ending))
        token = page.get("NextToken")
        if not token:
            break
    return sorted(out, key=lambda s: s.index)


def shard_index(shard_id: str) -> int:
    tail = shard_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else abs(hash(shard_id)) % (1 << 30)


def server_time_ms(cfg, kinesis=None) -> int:
    """The server's clock (the Date header of a cheap call), never before this machine's: a bound on the arrival
    time of every record that was in the stream when the run started."""
    kinesis = kinesis or client(cfg)
    resp = _call(cfg, kinesis.describe_stream_summary, "describing it", StreamName=cfg.streamName)
    local = int(time.time() * 1000)
    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        from email.utils import parsedate_to_datetime
        try:
            return max(local, int(parsedate_to_datetime(date).timestamp() * 1000) + 1000)  # Date has 1 s resolution
        except (TypeError, ValueError):
            pass
    return local


def iterator(cfg, kinesis, shard_id: str, start: Start) -> str:
    kw = {"StreamName": cfg.streamName, "ShardId": shard_id, "ShardIteratorType": start.kind}
    if start.sequence is not None:
        kw["StartingSequenceNumber"] = start.sequence
    return _call(cfg, kinesis.get_shard_iterator, f"opening shard {shard_id} at {start.kind}", **kw)["ShardIterator"]


def get_records(cfg, kinesis, shard_id: str, it: str, limit: int):
    """One GetRecords page: (records, next iterator or None when the closed shard is read to its end,
    caught up: the page is empty and the shard has nothing newer)."""
    resp = _call(cfg, kinesis.get_records, f"reading shard {shard_id}", ShardIterator=it,
                 Limit=max(1, min(limit, MAX_LIMIT)))
    records = resp.get("Records", [])
    return records, resp.get("NextShardIterator"), not records and resp.get("MillisBehindLatest", 0) == 0


def arrival_ms(record) -> int | None:
    ts = record.get("ApproximateArrivalTimestamp")
    if ts is None:
        return None
    return int(ts.timestamp() * 1000) if hasattr(ts, "timestamp") else int(float(ts) * 1000)


class ShardReader:
    """Reads one shard page by page from a start; survives expired iterators (re-opened after the last record
    read). ``last`` is the sequence number of the last record returned."""

    def __init__(self, cfg, shard_id: str, start: Start, kinesis=None):
        self.cfg, self.shard_id, self.start = cfg, shard_id, start
        self.kinesis = kinesis or client(cfg)
        self.last: str | None = start.sequence if start.kind == "AFTER_SEQUENCE_NUMBER" else None
        self._it: str | None = None
        self.ended = False  # a closed shard read to its end

    def read(self, limit: int):
        """(records, caught_up) of the next page."""
        if self.ended:
            return [], True
        for _ in range(3):
            if self._it is None:
                start = Start("AFTER_SEQUENCE_NUMBER", self.last) if self.last is not None else self.start
                self._it = iterator(self.cfg, self.kinesis, self.shard_id, start)
            try:
                records, nxt, caught_up = get_records(self.cfg, self.kinesis, self.shard_id, self._it, limit)
            except ConnectorError:
                raise
            except Exception:  # noqa: BLE001 - ExpiredIteratorException (the only one _call lets through)
                self._it = None
                continue
            self._it = nxt
            if nxt is None:
                self.ended = True
            if records:
                self.last = records[-1]["SequenceNumber"]
            return records, caught_up or self.ended
        raise ConnectorError(f"Kinesis stream {self.cfg.streamName!r}: the iterator of shard {self.shard_id} kept "
                             f"expiring; try again")


def put_records(cfg, payloads: list[bytes], keys: list[str] | None = None, kinesis=None) -> list[tuple[str, str]]:
    """Put payloads (partition keys ``keys``, else their index) in order of the list; returns (shard id, sequence
    number) per payload. Raises if any record was refused (after retrying the refused ones)."""
    kinesis = kinesis or client(cfg)
    out: list = [None] * len(payloads)
    for base in range(0, len(payloads), 500):
        todo = list(range(base, min(base + 500, len(payloads))))
        for _ in range(5):
            entries = [{"Data": payloads[i], "PartitionKey": (keys[i] if keys else str(i))} for i in todo]
            resp = _call(cfg, kinesis.put_records, "putting records", StreamName=cfg.streamName, Records=entries)
            failed = []
            for i, r in zip(todo, resp["Records"]):
                if r.get("ErrorCode"):
                    failed.append(i)
                else:
                    out[i] = (r["ShardId"], r["SequenceNumber"])
            todo = failed
            if not todo:
                break
            time.sleep(0.5)
        if todo:
            raise ConnectorError(f"Kinesis stream {cfg.streamName!r}: {len(todo)} record(s) were refused")
    return out
