"""What comes out of a sensor the lateness window rewound (`alerts.lateness`, items 1 and 2 of
its docstring): the re-run's transitions split into the new runs' and the old runs' (`_split`),
then the new transitions a consumer was not told, each continuing the one before, and a
correction to the new run's final level (`_chain`). Split from `alerts.lateness`; the code moved
as it was.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.segments import segment_ends, segment_starts
from alerts.state import I64, NO_TS, Part, Transitions, as_part, assemble
from alerts.table import ACTION, SIDES

__all__: list[str] = []  # a part of `alerts.lateness`: nothing here is public


def _split(tr: Transitions, extra: list[Part], r: int) -> tuple[Transitions, Transitions]:
    """The new runs' (rows < r) and the old runs' (r <= rows < 2r, renumbered) transitions."""
    all_tr = assemble([as_part(tr), *extra])
    n = np.flatnonzero(all_tr.sensor < r)
    o = np.flatnonzero((all_tr.sensor >= r) & (all_tr.sensor < 2 * r))

    def take(rows: I64, shift: int) -> Transitions:
        return Transitions(
            (all_tr.sensor[rows] - shift).astype(np.int32),
            all_tr.ts[rows],
            all_tr.value[rows],
            all_tr.side[rows],
            all_tr.before[rows],
            all_tr.after[rows],
        )

    return take(n, 0), take(o, r)


def _chain(
    n_tr: Transitions,
    o_tr: Transitions,
    live: npt.NDArray[np.int8],
    fin: npt.NDArray[np.int8],
    t0: I64,
    told0: I64,
) -> list[Part]:
    """Items 1 and 2 of the module's docstring, over all rewound sensors at once; sensors are
    row numbers here (0..r-1)."""
    r = live.shape[0]
    fin = fin.copy()
    fin[:, ACTION] = live[:, ACTION]  # never rewound
    ns, nt, nv = n_tr.sensor.astype(np.int64), n_tr.ts, n_tr.value
    nd, nb, na = (
        n_tr.side.astype(np.int64),
        n_tr.before.astype(np.int64),
        n_tr.after.astype(np.int64),
    )
    order = np.lexsort((nt, nd, ns))
    ns, nt, nv, nd, nb, na = ns[order], nt[order], nv[order], nd[order], nb[order], na[order]
    k_n = ns.shape[0]
    # known: the old run has the same (sensor, side, ts, before, after)
    tag = np.concatenate([np.ones(k_n, np.int64), np.zeros(len(o_tr), np.int64)])
    keys = [
        np.concatenate([a, b.astype(np.int64)])
        for a, b in (
            (ns, o_tr.sensor),
            (nd, o_tr.side),
            (nt, o_tr.ts),
            (nb, o_tr.before),
            (na, o_tr.after),
        )
    ]
    srt = np.lexsort((tag, keys[4], keys[3], keys[2], keys[1], keys[0]))
    same = np.zeros(srt.shape[0], dtype=np.bool_)
    if srt.shape[0] > 1:
        eq = np.ones(srt.shape[0] - 1, dtype=np.bool_)
        for key in keys:
            eq &= key[srt][1:] == key[srt][:-1]
        same[1:] = eq & (tag[srt][1:] == 1) & (tag[srt][:-1] == 0)
    known = np.zeros(k_n + len(o_tr), dtype=np.bool_)
    known[srt] = same
    grp = ns * SIDES + nd
    # told: the time of the last transition of each side that came out (`CoreState.told`); a
    # new one at or before it is history the consumer has moved past (a late episode before the
    # raise it was told of cleared the running alarm and raised it again, helper-129)
    told = told0.reshape(-1)
    u = np.flatnonzero(~known[:k_n] & (nt > told[grp]))
    ug = grp[u]
    ustart = segment_starts(ug)
    prev = np.empty(u.shape[0], dtype=np.int64)
    prev[1:] = na[u][:-1]
    prev[ustart] = live.reshape(-1)[ug[ustart]]
    emit = u[na[u] != prev]
    parts: list[Part] = [(ns[emit], nt[emit], nv[emit], nd[emit], prev[na[u] != prev], na[emit])]
    # where a consumer's level ends up, against the new run's final level
    cur = live.astype(np.int64).reshape(-1)
    uend = segment_ends(ustart)
    cur[ug[uend]] = na[u][uend]
    # stamped at the last change of either run, the new run's on a tie; else at t0
    stamp = np.full(r * SIDES, NO_TS, dtype=np.int64)
    value = np.full(r * SIDES, np.nan)
    for ks, kd, kt, kv in (
        (o_tr.sensor.astype(np.int64), o_tr.side.astype(np.int64), o_tr.ts, o_tr.value),
        (ns, nd, nt, nv),
    ):
        if not ks.shape[0]:
            continue
        srt = np.lexsort((kt, kd, ks))
        g = (ks * SIDES + kd)[srt]
        end = srt[segment_ends(segment_starts(g))]
        g = ks[end] * SIDES + kd[end]
        later = kt[end] >= stamp[g]
        stamp[g[later]], value[g[later]] = kt[end][later], kv[end][later]
    none = stamp == NO_TS
    stamp[none] = np.repeat(t0, SIDES)[none]
    fix = np.flatnonzero(cur != fin.astype(np.int64).reshape(-1))
    fix64 = fix.astype(np.int64)
    fin64 = fin.reshape(-1)[fix].astype(np.int64)
    parts.append((fix64 // SIDES, stamp[fix], value[fix], fix64 % SIDES, cur[fix], fin64))
    # one part by (sensor, ts, side); a correction after what it corrects (a stable sort)
    cs, ct, cv, cd, cb, ca = (
        np.concatenate([np.asarray(p[i]).astype(dt) for p in parts])
        for i, dt in enumerate((np.int64, np.int64, np.float64, np.int64, np.int64, np.int64))
    )
    order = np.lexsort((cd, ct, cs))
    return [(cs[order], ct[order], cv[order], cd[order], cb[order], ca[order])]
