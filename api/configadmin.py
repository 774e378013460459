"""The running configuration: which revision the hub starts with, and changes made while it runs.

A change (a registry edit, an import, a rollback) is checked whole (`build`: the same checks as
a configuration file: models, profiles, rule packs, cross-references), recorded as a revision in
`api.registrydb`, then switched to without a restart (`switch`: the hub swaps the registry of
every part between two batches, see `Hub.switch`). Changes are serialized.

The document of a configuration, its secrets' masking and its check are `api.configdoc`'s
(re-exported here).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from api.configdoc import (
    MAX_ERRORS,
    ConfigRefusedError,
    config_errors,
    digest_of,
    document,
    document_digest,
    mask,
    unmask,
    validate,
)
from api.hidden import HIDDEN
from api.keycarry import apply_key_changes, key_diff
from api.registrydb import RegistryDB, Revision, Source
from telemetry.clock import wall_ms
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.registry import Registry
from telemetry.registrychecks import check_plates, critical_t_notices, duplicate_plates

__all__ = [
    "HIDDEN",
    "MAX_ERRORS",
    "ConfigAdmin",
    "ConfigRefusedError",
    "StaleRevisionError",
    "Vet",
    "document",
    "document_digest",
    "mask",
    "revision_to_run",
    "unmask",
]

log = logging.getLogger(__name__)

# what the configuration alone cannot tell (its notification objects counted with the API's),
# given the running one and the next, in a thread under the lock: ConfigRefusedError
Vet = Callable[[HubConfig, HubConfig], None]


def revision_to_run(db: RegistryDB, file_digest: str) -> Revision | None:
    """The newest revision, when the configuration file (of `file_digest`) is the one the hub
    last read; None when there is none or the file changed since (then the file wins)."""
    latest = db.latest_revision()
    if latest is None or db.last_file_digest() != file_digest:
        return None
    return latest


class ConfigAdmin:
    def __init__(
        self,
        db: RegistryDB,
        build: Callable[[HubConfig], Registry],
        switch: Callable[[Registry, int], Awaitable[None]],
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.db = db
        self._build = build
        self._switch = switch
        self._clock = clock
        # one change at a time; the routes of subscriptions, policies and silences take it too,
        # so that a tenant's count (`api.configlimits`) never misses one written meanwhile
        self.lock = asyncio.Lock()
        self.rev = 0
        self.registry: Registry | None = None

    def startup(self, file_registry: Registry, file_source: str) -> Registry:
        registry = self._startup(file_registry, file_source)
        for plate, vehicles in duplicate_plates(registry.config).items():
            # (a configuration of before the check runs on: `hazardhub check` names them)
            log.warning("plate %s is of %d vehicles: %s", plate, len(vehicles), ", ".join(vehicles))
        for line in critical_t_notices(registry.config):  # the table's Q used instead
            log.warning("%s", line)
        return registry

    def _startup(self, file_registry: Registry, file_source: str) -> Registry:
        """The registry to start with: the newest revision, unless the configuration file
        changed since it was last read (then the file wins, recorded as a new revision). A
        newest revision that no longer checks out (profiles changed beside it) gives way to
        the file too."""
        doc = document(file_registry.config)  # large for a large configuration: made once
        digest = digest_of(doc)
        latest = revision_to_run(self.db, digest)
        if latest is not None:
            try:
                registry = self._build(validate(latest.document))
            except (ConfigRefusedError, ConfigError) as exc:
                # the places are the revision's: the builder names them after the file
                failed = str(exc).replace(f"{file_source}: ", f"revision {latest.rev}: ")
                log.error("configuration revision %d no longer checks: %s", latest.rev, failed)
            else:
                if latest.source != "file":
                    log.info(
                        "running configuration revision %d (%s), newer than the file %s, "
                        "which has not changed since it was last read",
                        latest.rev,
                        latest.source,
                        file_source,
                    )
                else:
                    log.info(
                        "running configuration revision %d: the file %s, unchanged since it "
                        "was last read",
                        latest.rev,
                        file_source,
                    )
                self.rev, self.registry = latest.rev, registry
                return registry
        registry = file_registry
        comment = file_source
        newest = latest if latest is not None else self.db.latest_revision()
        # the file as the newest revision (an export put back into it): nothing is dropped
        same = newest is not None and digest_of(newest.document) == digest
        dropped = "" if same else self._dropped_by_file(newest)
        why = (
            f"the configuration file {file_source} changed since the hub last read it"
            if latest is None
            else f"configuration revision {latest.rev} no longer checks, so the file runs"
        )
        if dropped and latest is not None:  # the file did not change: the revision failed
            comment = (
                f"{file_source} (revision {latest.rev} no longer checks; it replaces {dropped} "
                "made through the API)"
            )
        elif dropped:
            comment = f"{file_source} (changed; it replaces {dropped} made through the API)"
        if dropped and newest is not None:  # (API revisions of before the changes were kept)
            base = self.db.file_document_before(newest.rev)
            self.db.record_key_changes(
                key_diff(base, newest.document), actor="hub", now_ms=self._clock()
            )
        carried, said = apply_key_changes(doc, self.db.key_changes())
        if said:  # the keys the API took away, changed or made stay so
            try:
                with_keys: Registry | None = self._build(validate(carried))
            except (ConfigRefusedError, ConfigError) as exc:  # the file runs as it is
                log.error("the API's key changes not kept: %s", exc)
                with_keys = None
            if with_keys is not None:
                registry, doc = with_keys, carried
                for line in said:
                    log.warning("%s", line)
        self.rev = self.db.add_revision(
            doc,
            actor="file",
            comment=comment,
            source="file",
            now_ms=self._clock(),
            file_sha256=digest,
        )
        if dropped:
            log.warning(
                "%s: it runs as revision %d, and the changes of %s made through the "
                "API are NOT running (alarms of what they added are cleared); see them with GET "
                "/api/v1/config/revisions, bring one back with POST "
                "/api/v1/config/revisions/{rev}/restore, or put them into the file",
                why,
                self.rev,
                dropped,
            )
        else:
            if newest is None:
                how = "read for the first time"
            elif latest is None:
                how = "changed since it was last read"
            else:
                how = f"revision {latest.rev} no longer checks"
            log.info(
                "running configuration revision %d: the file %s, %s", self.rev, file_source, how
            )
        self.registry = registry
        return registry

    def _dropped_by_file(self, latest: Revision | None) -> str:
        """The revisions after the file was last read, made otherwise (the API, a restore),
        that the file now replaces: "revision 4" or "revisions 2-5" (a message says them so);
        empty when there are none."""
        if latest is None or latest.source == "file":
            return ""
        since = []
        for r in self.db.revisions(limit=1000, before=latest.rev + 1):  # newest first
            if r.source == "file":  # down to the last revision read from the file
                break
            since.append(r.rev)
        if not since:
            return ""
        return f"revision {since[0]}" if len(since) == 1 else f"revisions {since[-1]}-{since[0]}"

    def current(self) -> HubConfig:
        if self.registry is None:
            raise RuntimeError("ConfigAdmin.startup was not called")
        return self.registry.config

    def check(self, data: Any) -> tuple[HubConfig, Registry]:
        """Plain data checked whole as the next configuration; ConfigRefusedError otherwise."""
        config = validate(data)
        try:
            registry = self._build(config)
            if self.registry is not None:  # no new plate twice; those twice before may stay
                before = self.registry.config
                check_plates(
                    config,
                    "config",
                    allowed=frozenset(duplicate_plates(before)),
                    known=frozenset(f"{t.id}/{v.id}" for t in before.tenants for v in t.vehicles),
                )
            return config, registry
        except ConfigError as exc:
            raise ConfigRefusedError(config_errors(exc)) from exc

    def _checked(
        self, edit: Callable[[dict[str, Any]], Any], vet: Vet | None = None
    ) -> tuple[dict[str, Any], HubConfig, Registry]:
        """The running document, and `edit` of a copy of it checked as the next configuration
        (and by `vet`, given the running configuration and the next)."""
        running = self.current()
        before = document(running)
        data = unmask(edit(json.loads(json.dumps(before))), before)
        config, registry = self.check(data)
        if vet is not None:
            vet(running, config)
        return before, config, registry

    async def change(
        self,
        edit: Callable[[dict[str, Any]], Any],
        *,
        actor: str,
        comment: str,
        source: Source,
        expect_rev: int | None = None,
        dry_run: bool = False,
        vet: Vet | None = None,
    ) -> int:
        """Apply `edit` to (a copy of) the running configuration's document, check the result
        (`vet` too), record it and switch to it. Returns the new revision (the running one for
        a dry run). ConfigRefusedError for a configuration that does not check out;
        StaleRevisionError when `expect_rev` is not the running revision."""
        async with self.lock:
            if expect_rev is not None and expect_rev != self.rev:
                raise StaleRevisionError(self.rev)
            # the document, the edit and the whole check take long for a large configuration:
            # in a thread, the hub's event loop (ingest, alarms, the API) carries on meanwhile
            before, config, registry = await asyncio.to_thread(self._checked, edit, vet)
            if dry_run:
                return self.rev
            rev = self.db.add_revision(
                document(config), actor=actor, comment=comment, source=source, now_ms=self._clock()
            )
            try:
                await self._switch(registry, rev)
            except Exception as exc:
                log.exception("configuration revision %d could not be switched to", rev)
                self.rev = self.db.add_revision(
                    before,
                    actor="hub",
                    comment=f"revision {rev} rolled back: {exc}",
                    source="api",
                    now_ms=self._clock(),
                )
                raise
            self.rev, self.registry = rev, registry
            if source != "file":  # the keys the API changed stay so, whatever a file says later
                self.db.record_key_changes(
                    key_diff(before, document(config)), actor=actor, now_ms=self._clock()
                )
            return rev


class StaleRevisionError(Exception):
    def __init__(self, running: int) -> None:
        super().__init__(f"the configuration is at revision {running}")
        self.running = running
