"""The alert core: rule tables, vectorized evaluation, alarms and their relational store."""

from alerts.alarms import AlarmBook, AlarmEvent
from alerts.errors import AlarmStoreError, AlertsError
from alerts.evaluate import CoreState, Outcome, Readings, Transitions, evaluate
from alerts.statedb import StateDB
from alerts.table import RuleTable, compile_table

__all__ = [
    "AlarmBook",
    "AlarmEvent",
    "AlarmStoreError",
    "AlertsError",
    "CoreState",
    "Outcome",
    "Readings",
    "RuleTable",
    "StateDB",
    "Transitions",
    "compile_table",
    "evaluate",
]
