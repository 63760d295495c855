"""The Beam step of a table source: one read of the warehouse, cut into Arrow tables of ``batch_rows``."""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from connectors.runtime import ORD, counter, ords


class ReadTableFn(beam.DoFn):
    def __init__(self, node_id, url, table, query, batch_rows):
        self.node_id, self.url, self.table, self.query, self.batch_rows = node_id, url, table, query, batch_rows

    def process(self, _):
        from connectors.warehouse import open_warehouse

        wh = open_warehouse(self.url)
        data = wh.read(self.table if not self.query else None, self.query)
        counter(self.node_id, "rows_in").inc(data.num_rows)
        data = data.append_column(ORD, ords(0, 0, data.num_rows))
        for batch in data.to_batches(max_chunksize=self.batch_rows):
            yield pa.Table.from_batches([batch])
