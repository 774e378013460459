"""The state database's tables (`alerts.statedb`): the schema a new file gets, and the
migrations of an older one, by `PRAGMA user_version`."""

from __future__ import annotations

__all__ = [
    "SCHEMA",
    "SCHEMA_V2",
    "SCHEMA_V3",
    "SCHEMA_V4",
    "SCHEMA_V5",
    "SCHEMA_V5_FILL",
    "SCHEMA_V6",
    "SCHEMA_V6_ORIGIN",
    "SCHEMA_V7",
    "SCHEMA_V8",
    "SCHEMA_V9",
    "SCHEMA_V10",
    "SCHEMA_V11",
    "SCHEMA_V12",
    "SCHEMA_V12_FILL",
    "VERSION",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL, site TEXT NOT NULL, device TEXT NOT NULL, sensor TEXT NOT NULL,
    rule TEXT NOT NULL, side INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, action TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'cleared')),
    started_ts INTEGER NOT NULL, ended_ts INTEGER, raised_at INTEGER NOT NULL,
    cleared_at INTEGER, peak_level INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    value REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_alarm
    ON alarms (sensor, rule, side) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS alarms_tenant ON alarms (tenant, started_ts);
CREATE TABLE IF NOT EXISTS alarm_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    kind TEXT NOT NULL, ts INTEGER NOT NULL, arrival INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, value REAL,
    UNIQUE (alarm_id, kind, ts, level)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
    payload BLOB NOT NULL, size INTEGER NOT NULL
);
"""

# version 2: the alarm lifecycle (ISA-18.2 states, disposal), audited events, shelves, sensors
# out of service, subscriptions, escalation policies, silences and the notification outbox
SCHEMA_V2 = """
ALTER TABLE alarms ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN shelved_until INTEGER;
ALTER TABLE alarms ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN out_of_service INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN disposal TEXT NOT NULL DEFAULT 'received';
ALTER TABLE alarms ADD COLUMN disposal_due INTEGER;
ALTER TABLE alarms ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN isa_state TEXT NOT NULL DEFAULT 'unack';
ALTER TABLE alarms ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
-- alarms of before the lifecycle: the cleared ones are history (normal, disposal closed), the
-- active ones wait for an acknowledgement like any new one
UPDATE alarms SET acked = 1, isa_state = 'normal', disposal = 'closed' WHERE state = 'cleared';
CREATE INDEX alarms_open ON alarms (isa_state) WHERE isa_state != 'normal';
CREATE INDEX alarms_due ON alarms (disposal_due) WHERE disposal != 'closed' AND overdue = 0;
CREATE INDEX alarms_shelved ON alarms (shelved_until) WHERE shelved_until IS NOT NULL;
CREATE INDEX alarms_sensor ON alarms (sensor, rule, side);
CREATE TABLE alarm_events_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    kind TEXT NOT NULL, ts INTEGER NOT NULL, arrival INTEGER NOT NULL,
    level INTEGER NOT NULL, level_name TEXT NOT NULL, tier TEXT NOT NULL, value REAL,
    actor TEXT, comment TEXT NOT NULL DEFAULT '', isa_state TEXT NOT NULL DEFAULT ''
);
INSERT INTO alarm_events_v2 (id, alarm_id, kind, ts, arrival, level, level_name, tier, value)
    SELECT id, alarm_id, kind, ts, arrival, level, level_name, tier, value FROM alarm_events;
DROP TABLE alarm_events;
ALTER TABLE alarm_events_v2 RENAME TO alarm_events;
CREATE UNIQUE INDEX alarm_events_once ON alarm_events (alarm_id, kind, ts, level)
    WHERE actor IS NULL;
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id);
CREATE TABLE shelves (
    sensor TEXT NOT NULL, rule TEXT NOT NULL, side INTEGER NOT NULL,
    until INTEGER NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL,
    PRIMARY KEY (sensor, rule, side)
);
CREATE TABLE out_of_service (
    sensor TEXT PRIMARY KEY, tenant TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE notify_objects (
    kind TEXT NOT NULL CHECK (kind IN ('subscription', 'escalation', 'silence')),
    tenant TEXT NOT NULL, id TEXT NOT NULL, spec TEXT NOT NULL, origin TEXT NOT NULL,
    actor TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, tenant, id)
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, site TEXT NOT NULL,
    subscription TEXT NOT NULL, channel TEXT NOT NULL, subject TEXT NOT NULL,
    events TEXT NOT NULL, created_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
    open_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    last_error TEXT NOT NULL DEFAULT '', delivered_at INTEGER, first_event INTEGER
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE status = 'pending';
CREATE INDEX outbox_group ON outbox (subscription, tenant, site, open_until)
    WHERE open_until IS NOT NULL;
CREATE TABLE notify_cursor (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
"""
# version 3: the alarm list (a tenant's alarms, newest first) walks an index and stops at its
# limit, instead of sorting every alarm of the tenant (200,000 alarms: 65 ms -> 0.6 ms)
SCHEMA_V3 = """
CREATE INDEX alarms_tenant_id ON alarms (tenant, id);
"""
# version 4: the notification outbox and its cursor live in a database of their own
# (`alerts.notify.outboxdb`, which takes over the rows of this file's `outbox` and
# `notify_cursor` at start; the tables stay, empty). No change here: the version makes a hub of
# before refuse the file, which would start a pipeline of its own and leave the other's pending
# notifications unsent
SCHEMA_V4 = ""
# version 5: a shelve keeps the level the alarm had reached when it was shelved: a raise or an
# escalation above it ends the shelve (a yellow chatter shelved does not hide the red power cut)
SCHEMA_V5 = """
ALTER TABLE shelves ADD COLUMN level INTEGER;
"""
# the shelves of before get the highest level their point's shelved alarms reached: a yellow
# chatter shelved before the upgrade no longer hides the point's red (helper-97)
SCHEMA_V5_FILL = """
UPDATE shelves SET level = (
    SELECT MAX(a.peak_level) FROM alarms a WHERE a.sensor = shelves.sensor
    AND a.rule = shelves.rule AND a.side = shelves.side AND a.shelved_until IS NOT NULL
) WHERE level IS NULL;
"""
# version 6: a dead letter like the last one of its topic (same source and reason, within the
# hour) is counted on it instead of kept again: a deleted sensor's device, sending its point
# twice a second, pushed all older evidence out of the kept 10,000 in 1.4 h (helper-91)
# (and the tenant its topic names, `origin`: beyond the limits, the oldest letters of the origin
# holding most go first, so that one tenant's flood of device names cannot push every other
# tenant's evidence out, helper-107)
SCHEMA_V6 = """
ALTER TABLE dead_letters ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN last_at INTEGER;
CREATE INDEX dead_letters_like ON dead_letters (topic, source, reason, at);
"""
SCHEMA_V6_ORIGIN = """
ALTER TABLE dead_letters ADD COLUMN origin TEXT NOT NULL DEFAULT '';
CREATE INDEX dead_letters_origin ON dead_letters (origin, id);
"""
# version 7: the core's new side MAINTENANCE (calibration or manual held too long) took number 8,
# which a gateway's data-lost alarms had (`alerts.kinds`): theirs is now 15. The statement is
# tied to the number 8 of before, not to the constants: a later renumbering needs a version of
# its own
SCHEMA_V7 = """
UPDATE alarms SET side = 15 WHERE side = 8;
UPDATE shelves SET side = 15 WHERE side = 8;
"""
# version 8: the monitoring centre's review of an enterprise's closing (审核销号): the moment the
# deadline of an alarm's current disposal step counts from, when not its raise (`raised_at`): the
# enterprise's submission (the review's deadline), the centre's return (disposed of again, with
# the step's full time). NULL for every alarm of before: their deadlines stay as they were
SCHEMA_V8 = """
ALTER TABLE alarms ADD COLUMN disposal_from INTEGER;
"""
# version 9: the supervising centre's acknowledgement apart from the enterprise's (`acked` and
# `isa_state` stay the site's): the centre's repeats and escalation steps stop on
# `centre_acked`. Every alarm of before gets the acknowledgement it had, so that nothing
# acknowledged starts repeating to the centre after the upgrade
SCHEMA_V9 = """
ALTER TABLE alarms ADD COLUMN centre_acked INTEGER NOT NULL DEFAULT 0;
UPDATE alarms SET centre_acked = acked;
"""
# version 10: when the hub watched (`alerts.hubwatch`): data availability counts within it. A file
# of before gets one span from its first record to the upgrade, as availability counted then (the
# hub assumed watching), so that the months before keep their figures (a file set back to before
# keeps the spans it has). No HAVING without GROUP BY: SQLite before 3.39 refuses it (helper-137)
SCHEMA_V10 = """
CREATE TABLE IF NOT EXISTS hub_watch (start_ms INTEGER PRIMARY KEY, end_ms INTEGER NOT NULL);
INSERT INTO hub_watch (start_ms, end_ms)
    SELECT t, CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM (
        SELECT MIN(t) AS t FROM (
            SELECT MIN(started_ts) AS t FROM alarms UNION ALL SELECT MIN(at) FROM dead_letters
        )
    ) WHERE t IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hub_watch);
"""
# version 11: the centre's alarm supervisions (报警督办, `api.alarmsupervise`), the record a
# platform's answer (0x1401) is matched against (`alerts.supervisionanswers`): its id is the
# journal event that said it; the plate the ticket went with (the answer's must be it); the
# platform the gateway sent it to (its receipt; NULL until then). A file of before gets none:
# an answer to a supervision of before the upgrade is `unknown` (督办 it again)
SCHEMA_V11 = """
CREATE TABLE IF NOT EXISTS alarm_supervisions (
    id INTEGER PRIMARY KEY,
    alarm_id INTEGER NOT NULL REFERENCES alarms (id),
    tenant TEXT NOT NULL, vehicle TEXT NOT NULL, plate TEXT NOT NULL,
    deadline INTEGER NOT NULL, created_at INTEGER NOT NULL, actor TEXT NOT NULL,
    platform TEXT
);
CREATE INDEX IF NOT EXISTS alarm_supervisions_alarm ON alarm_supervisions (alarm_id);
"""
# version 12: what became of each supervision, so that the centre can list the ones to chase
# (`alerts.supervisionstate`): the gateway's last receipt (`receipt`: sent, kept, expired,
# dropped, no_platform, or the hub's own `not_sent`) and when; the platform's first answer
# (`answered_at`: in time or late) and its last one (`result`, its text, when, from which
# platform); when the hub's clock found it past its deadline unanswered (`overdue_at`).
SCHEMA_V12 = """
ALTER TABLE alarm_supervisions ADD COLUMN receipt TEXT;
ALTER TABLE alarm_supervisions ADD COLUMN receipt_at INTEGER;
ALTER TABLE alarm_supervisions ADD COLUMN answered_at INTEGER;
ALTER TABLE alarm_supervisions ADD COLUMN result INTEGER;
ALTER TABLE alarm_supervisions ADD COLUMN result_text TEXT;
ALTER TABLE alarm_supervisions ADD COLUMN result_at INTEGER;
ALTER TABLE alarm_supervisions ADD COLUMN answer_platform TEXT;
ALTER TABLE alarm_supervisions ADD COLUMN overdue_at INTEGER;
"""
# the supervisions of before get what their alarms' journals said (the receipts and answers were
# journaled as comments, `alerts.supervisionanswers`): the last receipt, the first and the last
# answer. `overdue_at` stays NULL: the hub's clock judges them at its start. And the indexes the
# list (a tenant's, newest first) and the clock (the unanswered ones by deadline) walk
SCHEMA_V12_FILL = """
CREATE TEMP TABLE supervision_receipts_v12 AS
    SELECT s.id AS sid, e.id AS eid, e.ts AS ts,
        substr(e.comment, length('督办 #' || s.id || ' ') + 1) AS said
    FROM alarm_supervisions s JOIN alarm_events e ON e.alarm_id = s.alarm_id
    WHERE e.kind = 'commented' AND e.actor LIKE '% (JT/T 809 gateway)'
      AND substr(e.comment, 1, length('督办 #' || s.id || ' ')) = '督办 #' || s.id || ' ';
UPDATE alarm_supervisions SET
    receipt = (SELECT CASE
            WHEN r.said LIKE '已发往 %' THEN 'sent'
            WHEN r.said LIKE '待发: %' THEN 'kept'
            WHEN r.said LIKE '未发出: 已过截止时间%' THEN 'expired'
            WHEN r.said LIKE '未发出: 无平台%' THEN 'no_platform'
            WHEN r.said LIKE '未发出: %' THEN 'dropped'
        END FROM supervision_receipts_v12 r WHERE r.sid = alarm_supervisions.id
        ORDER BY r.eid DESC LIMIT 1),
    receipt_at = (SELECT r.ts FROM supervision_receipts_v12 r
        WHERE r.sid = alarm_supervisions.id ORDER BY r.eid DESC LIMIT 1)
WHERE receipt IS NULL AND id IN (SELECT sid FROM supervision_receipts_v12);
DROP TABLE supervision_receipts_v12;
UPDATE alarm_supervisions SET receipt = 'not_sent', receipt_at = (SELECT e.ts FROM alarm_events e
        WHERE e.alarm_id = alarm_supervisions.alarm_id AND e.kind = 'commented'
          AND e.actor = 'hub' AND e.comment LIKE '督办 #' || alarm_supervisions.id || ' 未发出 %'
        ORDER BY e.id LIMIT 1)
WHERE receipt IS NULL AND EXISTS (SELECT 1 FROM alarm_events e
        WHERE e.alarm_id = alarm_supervisions.alarm_id AND e.kind = 'commented'
          AND e.actor = 'hub' AND e.comment LIKE '督办 #' || alarm_supervisions.id || ' 未发出 %');
CREATE TEMP TABLE supervision_answers_v12 AS
    SELECT s.id AS sid, e.id AS eid, e.ts AS ts,
        substr(e.actor, 1, length(e.actor) - length(' (JT/T 809)')) AS platform,
        substr(e.comment, length('督办 #' || s.id || ' 应答: ') + 1) AS said
    FROM alarm_supervisions s JOIN alarm_events e ON e.alarm_id = s.alarm_id
    WHERE e.kind = 'commented' AND e.actor LIKE '% (JT/T 809)'
      AND substr(e.comment, 1, length('督办 #' || s.id || ' 应答: '))
        = '督办 #' || s.id || ' 应答: ';
UPDATE alarm_supervisions SET
    answered_at = (SELECT MIN(a.ts) FROM supervision_answers_v12 a
        WHERE a.sid = alarm_supervisions.id),
    result = (SELECT CAST(a.said AS INTEGER) FROM supervision_answers_v12 a
        WHERE a.sid = alarm_supervisions.id ORDER BY a.eid DESC LIMIT 1),
    result_text = (SELECT substr(a.said, instr(a.said, ' ') + 1) FROM supervision_answers_v12 a
        WHERE a.sid = alarm_supervisions.id ORDER BY a.eid DESC LIMIT 1),
    result_at = (SELECT a.ts FROM supervision_answers_v12 a
        WHERE a.sid = alarm_supervisions.id ORDER BY a.eid DESC LIMIT 1),
    answer_platform = (SELECT a.platform FROM supervision_answers_v12 a
        WHERE a.sid = alarm_supervisions.id ORDER BY a.eid DESC LIMIT 1)
WHERE answered_at IS NULL AND id IN (SELECT sid FROM supervision_answers_v12);
DROP TABLE supervision_answers_v12;
CREATE INDEX IF NOT EXISTS alarm_supervisions_tenant ON alarm_supervisions (tenant, id);
CREATE INDEX IF NOT EXISTS alarm_supervisions_due ON alarm_supervisions (deadline)
    WHERE answered_at IS NULL AND overdue_at IS NULL
      AND coalesce(receipt, '') NOT IN ('expired', 'dropped', 'no_platform', 'not_sent');
"""
VERSION = 12
