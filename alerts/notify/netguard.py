"""Where an enterprise's webhook may POST: the public internet, and the networks the monitoring
centre lists (`notify.enterprise_webhook_networks`). Not loopback, private, link-local (a
cloud's metadata service), shared (CGNAT), multicast or reserved addresses: an enterprise key
that may write its subscriptions would otherwise make the hub POST to services inside the
centre's network (an InfluxDB 1.x on 127.0.0.1:8086 runs any statement given in a POST's URL).
The centre's own webhooks (the configuration file's, an admin's or operator's) go anywhere.

Pure: the addresses are given; `alerts.notify.http` resolves names and checks each address it
connects to, so a name that resolves elsewhere later is caught too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

__all__ = ["AddressGuard"]


@dataclass(frozen=True, slots=True)
class AddressGuard:
    allowed: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def of(cls, networks: Iterable[IPv4Network | IPv6Network]) -> AddressGuard:
        return cls(tuple(networks))

    def permits(self, address: str) -> bool:
        """Whether a webhook may connect to `address` (an IP address as text, an IPv6 one
        possibly with its `%zone`)."""
        try:
            ip: IPv4Address | IPv6Address = ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True  # the centre's networks first, IPv6 ones included
        inner = _embedded_v4(ip)
        if inner is not None and inner != ip:
            return self.permits(str(inner))
        if isinstance(ip, IPv6Address) and (
            ip.is_site_local or ip in _V4_COMPATIBLE or ip in _NAT64_LOCAL
        ):
            return False  # deprecated or local forms that may route somewhere inside
        return ip.is_global and not ip.is_multicast and not ip.is_reserved


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: NAT64's well-known prefix
# (RFC 6052) and IPv4-translated (::ffff:0:a.b.c.d); through a NAT64 gateway 64:ff9b::a00:1
# reaches 10.0.0.1. IPv4-compatible ones (::a.b.c.d, deprecated) are judged by their IPv4
# address too; the local-use NAT64 prefix (RFC 8215), whose IPv4 address may sit elsewhere
# than the last 32 bits, is refused whole (allow it in the centre's networks if it must)
_V4_IN_LAST_32 = (IPv6Network("64:ff9b::/96"), IPv6Network("::ffff:0:0:0/96"))
_V4_COMPATIBLE = IPv6Network("::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")


def _embedded_v4(ip: IPv4Address | IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, 6to4, Teredo's client,
    NAT64, IPv4-translated and -compatible), so that `::ffff:127.0.0.1` is judged as
    127.0.0.1."""
    if isinstance(ip, IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _V4_IN_LAST_32) or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None
