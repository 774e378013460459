"""What a JT/T 809 link that has not logged in may use (sans-IO; times in seconds of a monotonic
clock): links not logged in have their own bound, per source address and in all, so that they
never keep a platform from connecting; failed logins from an address, or for an access code,
put it in a backoff during which its tries are closed unchecked; a logged-in link's bad frames
are bounded in a window.

The bounds are the gateway's (`Limits`); the server asks `admit` when a link opens, `bad`
for each problem of a link, `failed_login` / `good_login` for each login it answers, `held` for
each login before checking it."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from gateway.logtext import shown

__all__ = ["Admit", "BadWindow", "Guard", "Limits", "address_of", "shown"]


@dataclass(frozen=True, slots=True)
class Limits:
    pending: int = 32  # links not logged in, in all
    pending_per_address: int = 4  # links not logged in from one source address
    pending_bad: int = 3  # problems (bad frame, message before a login, ...) closing such a link
    pending_skipped_bytes: int = 4096  # bytes outside frames closing such a link
    bad_frames: int = 100  # bad frames or bodies of a logged-in link within `bad_window_s`
    bad_window_s: float = 10.0
    failed_logins: int = 5  # failed logins from an address, or for an access code, within
    failed_window_s: float = 60.0  # this long put it in a backoff of
    backoff_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Admit:
    """A link's admission: `refuse` a counter kind when it is closed at once; `evict` a pending
    link to close to make room (the oldest of the address with most pending links)."""

    refuse: str | None = None
    evict: object | None = None


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    until: float = 0.0


class Guard:
    def __init__(self, limits: Limits, allow_from_all: bool, allows: Callable[[str], bool]) -> None:
        """`allow_from_all`: every platform has an `allow_from`; `allows(host)`: whether some
        platform's `allow_from` has `host`."""
        self.limits = limits
        self._allow_from_all = allow_from_all
        self._allows = allows
        self.pending: dict[object, tuple[str, float]] = {}  # link -> (address, opened)
        self._per_host: Counter[str] = Counter()
        self._failures: dict[str, _Failures] = {}  # "address h" or "code c" -> failures
        self._known: dict[int, set[str]] = {}  # access code -> addresses it logged in from

    # --- links not logged in ------------------------------------------------------------------

    def admit(self, link: object, host: str, now: float) -> Admit:
        """Whether a new link from `host` is taken (then pending until `logged_in`/`gone`)."""
        host = address_of(host)
        if self._allow_from_all and not self._allows(host):
            return Admit("refused_address")
        if self.backoff_left(f"address {host}", now) > 0:
            return Admit("refused_backoff")
        if self._per_host[host] >= self.limits.pending_per_address:
            return Admit("refused_pending")
        evict = None
        if len(self.pending) >= self.limits.pending:
            worst, n = self._per_host.most_common(1)[0]
            if n <= self._per_host[host]:  # its address has as many as any: no room
                return Admit("refused_pending")
            evict = next(k for k, (h, _) in self.pending.items() if h == worst)
            self.gone(evict)
        self.pending[link] = (host, now)
        self._per_host[host] += 1
        return Admit(None, evict)

    def logged_in(self, link: object) -> None:
        self.gone(link)

    def gone(self, link: object) -> None:
        got = self.pending.pop(link, None)
        if got is not None:
            self._per_host[got[0]] -= 1
            if self._per_host[got[0]] <= 0:
                del self._per_host[got[0]]

    # --- failed logins ------------------------------------------------------------------------

    def held(self, host: str, code: int, now: float, trusted: bool = False) -> str | None:
        """The key (`address ...` or `code ...`) whose backoff refuses this login, or None.
        An access code's backoff does not hold an address it logged in rightly from, nor one
        that is `trusted` (in the platform's own `allow_from`)."""
        host = address_of(host)
        if self.backoff_left(f"address {host}", now) > 0:
            return f"address {host}"
        if trusted or host in self._known.get(code, ()):
            return None
        if self.backoff_left(f"code {code}", now) > 0:
            return f"code {code}"
        return None

    def failed_login(self, host: str, code: int, now: float) -> list[str]:
        """Count a failed login; the keys that start a backoff now (to be said)."""
        host = address_of(host)
        started = []
        for key in (f"address {host}", f"code {code}"):
            f = self._failures.setdefault(key, _Failures())
            f.times.append(now)
            while f.times and f.times[0] < now - self.limits.failed_window_s:
                f.times.popleft()
            if len(f.times) >= self.limits.failed_logins and f.until <= now:
                f.until = now + self.limits.backoff_s
                f.times.clear()
                started.append(key)
        if len(self._failures) > 4096:  # old entries go (an address that stopped trying)
            since = now - self.limits.failed_window_s
            for key in [
                k
                for k, f in self._failures.items()
                if (not f.times or f.times[-1] < since) and f.until <= now
            ]:
                del self._failures[key]
        return started

    def good_login(self, host: str, code: int) -> None:
        self._known.setdefault(code, set()).add(address_of(host))

    def backoff_left(self, key: str, now: float) -> float:
        f = self._failures.get(key)
        return max(0.0, f.until - now) if f is not None else 0.0


class BadWindow:
    """A logged-in link's bad frames within the last `window_s`: `add` says when they reach
    `limit`."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        self._times.append(now)
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        return len(self._times) >= self.limit


def address_of(host: str) -> str:
    """`host` without its IPv6 zone, an IPv4-mapped IPv6 address as IPv4."""
    bare = host.split("%", maxsplit=1)[0]
    try:
        addr = ip_address(bare)
    except ValueError:
        return bare
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)
