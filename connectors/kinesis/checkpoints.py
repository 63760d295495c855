"""Kinesis checkpoints in the warehouse: ``_flow_checkpoints`` holds, per (consumer, stream, shard), the sequence
number of the last record whose rows are loaded. Kinesis keeps no consumer positions itself (the KCL keeps them in
a DynamoDB lease table); flow-beam keeps them next to the data they describe.

``consumer`` is the source's ``applicationName`` (default ``<pipeline id>/<node id>``). A checkpoint only moves
forward (sequence numbers compare as integers). Drained runs write them in ``finish`` after the loads committed;
streaming runs write them as the targets' frontiers pass the records.
"""
from __future__ import annotations

from ir_compiler.errors import LoadError

TABLE = "_flow_checkpoints"


def _ensure(wh, con) -> None:
    wh.execute(con, f"CREATE TABLE IF NOT EXISTS {wh.ident(TABLE)} (consumer TEXT, stream TEXT, shard TEXT, "
                    f"position TEXT, updated_at TIMESTAMP)")


def read(url: str, consumer: str, stream: str) -> dict[str, str]:
    """{shard id: last loaded sequence number} of ``consumer`` on ``stream`` (empty when none yet)."""
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.streaming import _LOCK

    wh = open_warehouse(url)
    with _LOCK, wh.session() as con:
        if wh.schema_in(con, TABLE) is None:
            return {}
        rows = wh.execute(con, f"SELECT shard, position FROM {wh.ident(TABLE)} WHERE consumer = {wh.ph} AND "
                               f"stream = {wh.ph}", [consumer, stream]).fetchall()
    return {shard: pos for shard, pos in rows}


def commit(url: str, consumer: str, stream: str, positions: dict[str, str]) -> dict[str, str]:
    """Record ``{shard: sequence number}`` in one transaction (a shard's checkpoint never moves back); returns
    what was written."""
    if not positions:
        return {}
    from connectors.warehouse import open_warehouse
    from connectors.warehouse.streaming import _LOCK, _serialize

    wh = open_warehouse(url)
    written = {}
    with _LOCK, wh.session() as con:
        wh.begin(con)
        try:
            _serialize(wh, con)
            _ensure(wh, con)
            where = f"consumer = {wh.ph} AND stream = {wh.ph} AND shard = {wh.ph}"
            for shard, pos in sorted(positions.items()):
                key = [consumer, stream, shard]
                row = wh.execute(con, f"SELECT position FROM {wh.ident(TABLE)} WHERE {where}", key).fetchone()
                if row is not None and row[0] is not None and int(row[0]) >= int(pos):
                    continue
                wh.execute(con, f"DELETE FROM {wh.ident(TABLE)} WHERE {where}", key)
                wh.execute(con, f"INSERT INTO {wh.ident(TABLE)} VALUES ({wh.ph}, {wh.ph}, {wh.ph}, {wh.ph}, "
                                f"CURRENT_TIMESTAMP)", key + [str(pos)])
                written[shard] = str(pos)
            wh.commit(con)
        except wh.db_errors as exc:
            wh.rollback(con)
            raise LoadError(f"cannot record Kinesis checkpoints of {consumer!r} on {stream!r}: "
                            f"{str(exc).strip().splitlines()[0]}") from None
        except BaseException:
            wh.rollback(con)
            raise
    return written
