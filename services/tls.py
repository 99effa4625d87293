"""A throw-away certificate authority and server certificates, for servers started with ``--tls``.

``services/run up NAME --dir DIR --tls`` makes, once per server directory, ``DIR/NAME/tls/``
holding a self-signed CA (``ca.pem``, ``ca.key``) and a server certificate signed by it
(``server.pem``, ``server.key``) for ``127.0.0.1``, ``::1`` and ``localhost`` (as subject
alternative names: clients verifying the host name, as libpq's ``verify-full`` does, match
on those). Clients trust ``ca.pem`` (the ``TLS_CA`` fact); a second, unrelated CA
(``other-ca.pem``) lets tests check that a server signed by someone else is refused.

Made with the ``openssl`` command-line tool (Debian's ``openssl``, present on every machine
here), so that ``services/`` keeps to the standard library. Keys are RSA 2048 (fast to make,
accepted by every server here), valid for 30 days: long enough for any test run.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.errors import ServiceError

__all__ = ["TlsFiles", "make_tls_files", "pkcs12_keystore"]

DAYS = "30"
HOSTS = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a server's TLS material (PEM)."""

    directory: Path
    ca: Path
    ca_key: Path
    cert: Path
    key: Path
    other_ca: Path

    def facts(self) -> dict[str, str]:
        """``KEY=VALUE`` facts for clients: the CA to trust, and one that signed nothing here."""
        return {"TLS_CA": str(self.ca), "TLS_OTHER_CA": str(self.other_ca)}


def make_tls_files(directory: Path) -> TlsFiles:
    """The CA and server certificate in ``directory``, made if missing (idempotent)."""
    files = TlsFiles(
        directory=directory,
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        cert=directory / "server.pem",
        key=directory / "server.key",
        other_ca=directory / "other-ca.pem",
    )
    if all(p.exists() for p in (files.ca, files.cert, files.key, files.other_ca)):
        return files
    if shutil.which("openssl") is None:
        raise ServiceError("--tls needs the openssl command: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed(files.ca, files.ca_key, "changehub test CA")
    other_key = directory / "other-ca.key"
    _self_signed(files.other_ca, other_key, "changehub unrelated CA")
    other_key.unlink()
    csr = directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName={','.join(HOSTS)}\n"
    )
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(files.key),
             "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(files.ca_key),
             "-CAcreateserial", "-out", str(files.cert), "-days", DAYS, "-sha256",
             "-extfile", str(ext))
    csr.unlink()
    ext.unlink()
    files.key.chmod(0o600)
    files.ca_key.chmod(0o600)
    return files


def pkcs12_keystore(files: TlsFiles, password: str) -> Path:
    """The server's key and certificate as a PKCS#12 keystore (for Java servers: Kafka)."""
    store = files.directory / "server.p12"
    if not store.exists():
        _openssl("pkcs12", "-export", "-in", str(files.cert), "-inkey", str(files.key),
                 "-certfile", str(files.ca), "-name", "server", "-out", str(store),
                 "-passout", f"pass:{password}")
        store.chmod(0o600)
    return store


def _self_signed(cert: Path, key: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", DAYS, "-sha256", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False,
                          timeout=60)
    if done.returncode != 0:
        raise ServiceError(f"openssl {args[0]} failed:\n{done.stderr.strip()}")
