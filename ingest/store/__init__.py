"""Time-series stores: the contract, the embedded SQLite store and the InfluxDB store."""

from ingest.store.base import (
    Aggregate,
    LatestValue,
    PositionBatch,
    ReadingBatch,
    StoreError,
    TimeSeriesStore,
)

__all__ = [
    "Aggregate",
    "LatestValue",
    "PositionBatch",
    "ReadingBatch",
    "StoreError",
    "TimeSeriesStore",
]
