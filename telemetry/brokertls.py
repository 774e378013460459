"""TLS to the MQTT broker: the settings every MQTT client of the project takes (the hub, the
Modbus and JT/T 808 gateways, the simulators), from the same command-line options.

`--broker-tls` trusts the system's CAs; `--broker-ca FILE` trusts that bundle instead (and
implies TLS); `--broker-cert FILE --broker-key FILE` give a client certificate for a broker that
requires one. The broker's name (or IP address) is always checked against its certificate: there
is no option to turn that off. The files are read once, at start (`BrokerTls.load`): one that
cannot be read, or is no certificate or key, is said in one line (`BrokerTlsError`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrokerTls", "BrokerTlsError", "tls_context"]


class BrokerTlsError(ValueError):
    """A TLS option that cannot be used: its file unreadable, or not a certificate or key."""


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """TLS to the broker: `ca` the CA bundle to trust (None: the system's), `cert` and `key` a
    client certificate (both or neither). `context` is made once, from the files as they were at
    `load`, and shared by every connection of the process."""

    ca: Path | None
    cert: Path | None
    key: Path | None
    context: ssl.SSLContext = field(repr=False, compare=False)

    @classmethod
    def load(
        cls, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
    ) -> BrokerTls:
        """The settings with their context made (the files read and checked): BrokerTlsError
        saying which option's file is wrong and why."""
        if (cert is None) != (key is None):
            raise BrokerTlsError("--broker-cert and --broker-key go together: give both")
        for option, path in (("--broker-ca", ca), ("--broker-cert", cert), ("--broker-key", key)):
            if path is not None:
                try:
                    path.read_bytes()
                except OSError as exc:
                    raise BrokerTlsError(
                        f"{option} {path}: cannot read: {exc.strerror or exc}"
                    ) from exc
        # TLS 1.2 at least, the hostname checked, the certificate required (the defaults)
        try:
            context = ssl.create_default_context(cafile=None if ca is None else str(ca))
        except ssl.SSLError as exc:
            raise BrokerTlsError(f"--broker-ca {ca}: no CA certificate in it ({exc})") from exc
        if cert is not None and key is not None:
            try:
                # no password: an encrypted key is refused, not asked for on the terminal
                context.load_cert_chain(str(cert), str(key), password=lambda: b"")
            except ssl.SSLError as exc:
                raise BrokerTlsError(
                    f"--broker-cert {cert} / --broker-key {key}: not a certificate and its "
                    f"private key ({exc.reason or exc})"
                ) from exc
        return cls(ca, cert, key, context)

    def describe(self) -> str:
        """How the broker is reached, for the log: `TLS (CA ca.pem, client certificate c.pem)`."""
        said = [f"CA {self.ca}" if self.ca else "the system's CAs"]
        if self.cert is not None:
            said.append(f"client certificate {self.cert}")
        return f"TLS ({', '.join(said)})"


def tls_context(tls: BrokerTls | None) -> ssl.SSLContext | None:
    """aiomqtt's `tls_context` for the settings (None: plain MQTT)."""
    return None if tls is None else tls.context
