"""The wire contract of hazardhub: topics, the telemetry codec, quality codes, configuration."""

from telemetry.codec import TelemetryBatch, decode, encode
from telemetry.errors import ConfigError, DecodeError, TelemetryError, TopicError
from telemetry.quality import Quality
from telemetry.topics import TopicLayout

__all__ = [
    "ConfigError",
    "DecodeError",
    "Quality",
    "TelemetryBatch",
    "TelemetryError",
    "TopicError",
    "TopicLayout",
    "decode",
    "encode",
]
