"""Jars from Maven Central, resolved by Maven itself from a small pom.

``mvn dependency:copy-dependencies`` reads a pom that lists a server's artifacts and copies
them with their whole dependency tree into a directory; Maven's own ``~/.m2`` is the download
cache. The result is put in place with a rename only once it is complete, and stamped with
the pom's hash, so an interrupted resolution is redone and an edited pom re-resolves.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from services.errors import ServiceError

__all__ = ["pom_property", "resolve", "resolved"]

# Pinned, so that the same pom gives the same copy on every machine.
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"
TIMEOUT = 1200.0


def pom_property(pom: Path, name: str) -> str:
    """The value of ``<properties><name>`` in ``pom``: the pom is where versions are set."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    value = ET.parse(pom).getroot().findtext(f"m:properties/m:{name}", namespaces=ns)
    if not value:
        raise ServiceError(f"{pom} has no <properties><{name}>")
    return value.strip()


def _stamp(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def resolved(pom: Path, lib: Path) -> bool:
    """True if ``lib`` holds the jars of this very ``pom``."""
    stamp = lib.with_name(lib.name + ".sha256")
    return lib.is_dir() and stamp.exists() and stamp.read_text().strip() == _stamp(pom)


def resolve(pom: Path, lib: Path) -> None:
    """Copy the runtime dependencies of ``pom`` into ``lib`` (callers hold the cache lock)."""
    if resolved(pom, lib):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is not installed: run `apt-get install maven`")
    partial = lib.with_name(lib.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    argv = [
        mvn, "-B", "-q", "-f", str(pom), COPY_DEPENDENCIES,
        f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"Maven did not resolve {pom} within {TIMEOUT:.0f} s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-25:]
        raise ServiceError(
            f"Maven could not resolve the jars of {pom} (exit {result.returncode}); is Maven "
            "Central reachable?\n" + "\n".join(output)
        )
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    lib.with_name(lib.name + ".sha256").write_text(_stamp(pom) + "\n")
