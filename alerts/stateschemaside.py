"""The state database's tables of the desks beside the alarms (`alerts.statedb`): lock-out
tests, hidden dangers (隐患), bypass approvals. Each is made at every open, without a version
(`CREATE ... IF NOT EXISTS`, columns added when missing): a hub of before leaves them alone."""

from __future__ import annotations

__all__ = [
    "BYPASS_APPROVAL_COLUMNS",
    "LOCK_PLAN_COLUMNS",
    "SCHEMA_BYPASS_APPROVALS",
    "SCHEMA_BYPASS_APPROVALS_KEPT",
    "SCHEMA_HAZARDS",
    "SCHEMA_LOCK_TESTS",
    "SCHEMA_VEHICLE_REPORTS",
]

# the lock-out tests of protective-action plans (`alerts.locktests`), and when the hub first saw
# each plan with a test interval (its overdue counts from then until a test is recorded). Made at
# every open, without a version: a hub of before leaves the tables alone, and one of after finds
# them (or makes them); nothing of before changes meaning. A test is never updated nor deleted:
# the table is the audit record (who recorded it, when); a test of the hub's own (a protective
# action confirmed in time, `actor` NULL) is recorded once
SCHEMA_LOCK_TESTS = """
CREATE TABLE IF NOT EXISTS lock_tests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, sensor TEXT NOT NULL, ts INTEGER NOT NULL,
    passed INTEGER NOT NULL CHECK (passed IN (0, 1)), note TEXT NOT NULL,
    actor TEXT, source TEXT NOT NULL CHECK (source IN ('api', 'action')),
    recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lock_tests_plan ON lock_tests (tenant, sensor, ts);
CREATE INDEX IF NOT EXISTS lock_tests_tenant ON lock_tests (tenant, id);
CREATE UNIQUE INDEX IF NOT EXISTS lock_tests_once ON lock_tests (tenant, sensor, ts, source)
    WHERE actor IS NULL;
CREATE TABLE IF NOT EXISTS lock_plans (
    tenant TEXT NOT NULL, sensor TEXT NOT NULL, first_seen INTEGER NOT NULL,
    every_days REAL,
    PRIMARY KEY (tenant, sensor)
);
"""
# the columns of `lock_plans` added since it was first made (ALTER TABLE at open when missing):
# `every_days`, the interval the plan was last judged with (a change is said as one)
LOCK_PLAN_COLUMNS = (("every_days", "REAL"),)
# the hidden-danger items (隐患排查治理, `alerts.hazards`) and their audit: made at every open,
# without a version, as the lock tests' tables (a hub of before leaves them alone). An item is
# updated as it moves through its steps; its audit (`hazard_events`) is never updated nor
# deleted from (triggers refuse it): who took each step, when, from which status to which, why
SCHEMA_HAZARDS = """
CREATE TABLE IF NOT EXISTS hazards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, site TEXT NOT NULL, source TEXT NOT NULL, category TEXT NOT NULL,
    grade TEXT NOT NULL CHECK (grade IN ('general', 'major')),
    description TEXT NOT NULL, location TEXT NOT NULL,
    alarm_ids TEXT NOT NULL, sensor_ids TEXT NOT NULL,
    found_at INTEGER NOT NULL, found_by TEXT NOT NULL,
    reported_by TEXT NOT NULL, reported_at INTEGER NOT NULL,
    status TEXT NOT NULL, responsible_person TEXT NOT NULL, measures TEXT NOT NULL,
    funds_yuan REAL, deadline INTEGER, interim_measures TEXT NOT NULL,
    plan TEXT, production_stop TEXT,
    requested_at INTEGER, review_due INTEGER, updated_at INTEGER NOT NULL,
    closed_at INTEGER, closed_by TEXT
);
CREATE INDEX IF NOT EXISTS hazards_tenant ON hazards (tenant, id);
CREATE INDEX IF NOT EXISTS hazards_open ON hazards (status) WHERE status != 'closed';
CREATE INDEX IF NOT EXISTS hazards_due ON hazards (deadline) WHERE status != 'closed';
CREATE TABLE IF NOT EXISTS hazard_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hazard_id INTEGER NOT NULL REFERENCES hazards (id),
    action TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL,
    actor TEXT, party TEXT NOT NULL, at INTEGER NOT NULL, comment TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hazard_events_item ON hazard_events (hazard_id, id);
-- the alarms an alarm -> hazard rule opened an item from (`alerts.hazardrules`): once each
CREATE TABLE IF NOT EXISTS hazard_alarm_opened (
    alarm_id INTEGER PRIMARY KEY, hazard_id INTEGER NOT NULL REFERENCES hazards (id)
);
-- a run of repeats at a point (sensor and rule) that opened an item (`alerts.hazardrules`): its
-- latest alarm's start (event time); an alarm within the rule's within_h of it goes on the run
CREATE TABLE IF NOT EXISTS hazard_repeat_runs (
    sensor TEXT NOT NULL, rule TEXT NOT NULL,
    hazard_id INTEGER NOT NULL REFERENCES hazards (id), last_ts INTEGER NOT NULL,
    PRIMARY KEY (sensor, rule)
);
-- listed supervision (挂牌督办) of a major item (`alerts.hazardsupervision`): one per item
CREATE TABLE IF NOT EXISTS hazard_supervision (
    hazard_id INTEGER PRIMARY KEY REFERENCES hazards (id),
    level TEXT NOT NULL CHECK (level IN ('province', 'city', 'county')),
    authority TEXT NOT NULL, document_no TEXT NOT NULL, notice_url TEXT,
    issued_at INTEGER NOT NULL, issued_by TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('listed', 'closed')),
    result TEXT, closed_at INTEGER, updated_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS hazard_events_kept BEFORE UPDATE ON hazard_events
    BEGIN SELECT RAISE(ABORT, 'the hidden-danger audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS hazard_events_never_deleted BEFORE DELETE ON hazard_events
    BEGIN SELECT RAISE(ABORT, 'the hidden-danger audit is append-only'); END;
"""
# the written approvals of interlock bypasses (联锁旁路/摘除审批, `alerts.bypasses`): made at every
# open, without a version, as the lock tests' tables (a hub of before leaves them alone). A row is
# never deleted, and only its revocation is ever written, once (triggers refuse the rest): the
# table is the audit record. And the active alarms by level name (`alerts.bypassalarms` asks the
# clock's every tick for the bypasses in effect: a probe of this index, not a scan)
SCHEMA_BYPASS_APPROVALS = """
CREATE TABLE IF NOT EXISTS bypass_approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, sensor TEXT NOT NULL,
    approved_by TEXT NOT NULL, reason TEXT NOT NULL, measures TEXT NOT NULL, ticket TEXT,
    valid_from INTEGER NOT NULL, until INTEGER NOT NULL CHECK (until > valid_from),
    actor TEXT NOT NULL, recorded_at INTEGER NOT NULL,
    revoked_at INTEGER, revoked_by TEXT, revoke_note TEXT,
    party TEXT CHECK (party IN ('enterprise', 'centre'))
);
CREATE INDEX IF NOT EXISTS bypass_approvals_sensor ON bypass_approvals (tenant, sensor, until);
CREATE INDEX IF NOT EXISTS bypass_approvals_tenant ON bypass_approvals (tenant, id);
CREATE TRIGGER IF NOT EXISTS bypass_approvals_never_deleted BEFORE DELETE ON bypass_approvals
    BEGIN SELECT RAISE(ABORT, 'a bypass approval is never deleted'); END;
CREATE INDEX IF NOT EXISTS alarms_active_level ON alarms (level_name) WHERE state = 'active';
"""
# the columns of `bypass_approvals` added since it was first made (ALTER TABLE at open when
# missing): `party`, who recorded it (the enterprise or the supervising centre; NULL on a row of
# before it, unknown)
BYPASS_APPROVAL_COLUMNS = (("party", "TEXT CHECK (party IN ('enterprise', 'centre'))"),)
# made after those columns: the trigger keeping the record (the first one, without `party`,
# replaced), and the approvals of a sensor by when each stops covering (its until, or its
# revocation when earlier), of those that covered a moment at all: the clock's tick reads the
# one covering now and the last one ended (`alerts.bypasses.sensor_approvals`), two probes
SCHEMA_BYPASS_APPROVALS_KEPT = """
DROP TRIGGER IF EXISTS bypass_approvals_kept;
CREATE TRIGGER IF NOT EXISTS bypass_approvals_kept_v2 BEFORE UPDATE ON bypass_approvals
    WHEN OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
      OR NEW.id IS NOT OLD.id OR NEW.tenant IS NOT OLD.tenant OR NEW.sensor IS NOT OLD.sensor
      OR NEW.approved_by IS NOT OLD.approved_by OR NEW.reason IS NOT OLD.reason
      OR NEW.measures IS NOT OLD.measures OR NEW.ticket IS NOT OLD.ticket
      OR NEW.valid_from IS NOT OLD.valid_from OR NEW.until IS NOT OLD.until
      OR NEW.actor IS NOT OLD.actor OR NEW.recorded_at IS NOT OLD.recorded_at
      OR NEW.party IS NOT OLD.party
    BEGIN SELECT RAISE(ABORT, 'a bypass approval is only ever revoked, once'); END;
CREATE INDEX IF NOT EXISTS bypass_approvals_end ON bypass_approvals
    (tenant, sensor, min(until, coalesce(revoked_at, until)))
    WHERE valid_from < min(until, coalesce(revoked_at, until));
"""
# what the lower platforms (JT/T 809) reported of each vehicle, the latest of each kind
# (`alerts.vehiclereports`): made at every open, without a version, as the lock tests' tables
SCHEMA_VEHICLE_REPORTS = """
CREATE TABLE IF NOT EXISTS vehicle_reports (
    tenant TEXT NOT NULL, vehicle TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('registration', 'driver', 'waybill')),
    at INTEGER NOT NULL, platform TEXT NOT NULL, gateway TEXT NOT NULL, plate TEXT NOT NULL,
    fields TEXT NOT NULL, received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, vehicle, kind)
);
"""
