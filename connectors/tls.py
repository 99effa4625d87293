"""``tls:``: one way to ask any connector for an encrypted, verified connection.

.. code-block:: yaml

    tls:
      ca: /etc/changehub/db-ca.pem   # the CA that signed the server's certificate (PEM)
      verify: true                   # the default: check the chain AND the host name
      cert: /etc/changehub/hub.pem   # optional client certificate (mutual TLS) ...
      key: /etc/changehub/hub.key    # ... and its key

Giving ``tls`` turns encryption on and makes it mandatory: a server that does not speak TLS
is an error, never a silent fallback to plain text. Verification is on by default — the
server's certificate must chain to ``ca`` (or, without ``ca``, to the trust store the client
library uses by default) and must name the host connected to, like libpq's
``sslmode=verify-full``. ``verify: false`` keeps encryption but accepts any certificate; it
exists for throw-away setups and says so in its name only. Each connector maps these keys
onto its client: libpq ``sslmode``/``sslrootcert``/``sslcert``/``sslkey`` for Postgres,
PyMySQL's ``ssl_*`` for MySQL/MariaDB. (Search sinks have ``verify_certs``/``ca_certs``,
the Kafka log backend librdkafka's ``security.protocol``/``ssl.*`` in ``log.config``.)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from connectors.api import StrictModel

__all__ = ["TlsConfig"]


class TlsConfig(StrictModel):
    """``tls:`` of a source connection: encryption required, certificate verified by default."""

    ca: Path | None = Field(
        default=None, description="CA certificate(s), PEM, that the server's must chain to"
    )
    verify: bool = Field(
        default=True, description="check the certificate chain and host name (verify-full)"
    )
    cert: Path | None = Field(default=None, description="client certificate, PEM (mutual TLS)")
    key: Path | None = Field(default=None, description="the client certificate's key, PEM")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both tls.cert and tls.key (a client certificate), or neither")
        for name in ("ca", "cert", "key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"tls.{name}: {str(path)!r} is not a readable file")
        return self
