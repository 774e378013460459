"""The JT/T 809 gateway's guard (sans-IO): links not logged in bounded per address and in all,
the busiest address giving way to another; failed logins putting an address or an access code
in a backoff that a platform's own address escapes."""

from __future__ import annotations

from gateway.jt809.guard import Guard, Limits, address_of, shown


def test_links_not_logged_in_are_bounded_fairly() -> None:
    g = Guard(Limits(pending=4, pending_per_address=4), False, lambda h: True)
    links = [object() for _ in range(9)]
    assert [g.admit(x, "10.0.0.1", 0).refuse for x in links[:4]] == [None] * 4
    assert g.admit(links[8], "10.0.0.1", 0).refuse == "refused_pending"
    # another address: room made by closing the oldest of the busiest
    a = g.admit(links[4], "10.0.0.2", 0)
    assert a.refuse is None and a.evict is links[0]
    assert g.admit(links[5], "10.0.0.3", 0).evict is links[1]
    # now 2, 1, 1: one more of 10.0.0.2 takes 10.0.0.1's room
    assert g.admit(links[6], "10.0.0.2", 0).evict is links[2]
    # 1, 2, 1: 10.0.0.2 has as many as any: refused
    assert g.admit(links[7], "10.0.0.2", 0).refuse == "refused_pending"
    g.logged_in(links[4])
    assert len(g.pending) == 3
    assert g.admit(links[7], "10.0.0.2", 0).refuse is None


def test_an_address_outside_every_allow_from() -> None:
    g = Guard(Limits(), True, lambda h: h == "10.0.0.1")
    assert g.admit(object(), "10.0.0.2", 0).refuse == "refused_address"
    assert g.admit(object(), "::ffff:10.0.0.1", 0).refuse is None


def test_failed_logins_back_off() -> None:
    g = Guard(Limits(failed_logins=3, failed_window_s=60, backoff_s=30), False, lambda h: True)
    g.good_login("10.0.0.9", 7)
    assert g.failed_login("10.0.0.1", 7, 0) == []
    assert g.failed_login("10.0.0.1", 7, 70) == []  # the first is out of the window
    assert g.failed_login("10.0.0.1", 7, 71) == []
    assert g.failed_login("10.0.0.1", 7, 72) == ["address 10.0.0.1", "code 7"]
    assert g.held("10.0.0.1", 8, 80) == "address 10.0.0.1"
    assert g.held("10.0.0.2", 7, 80) == "code 7"
    assert g.held("10.0.0.9", 7, 80) is None  # the platform's own address
    assert g.held("10.0.0.5", 7, 80, trusted=True) is None  # in the platform's allow_from
    assert g.admit(object(), "10.0.0.1", 80).refuse == "refused_backoff"
    assert g.held("10.0.0.1", 7, 103) is None  # over


def test_shown() -> None:
    assert shown("苏A·D1234") == "苏A·D1234"
    assert shown("A\nWARNING x\r\x1b[2J") == "A\\nWARNING x\\r\\x1b[2J"
    assert address_of("::ffff:192.0.2.1") == "192.0.2.1" and address_of("fe80::1%eth0") == "fe80::1"
