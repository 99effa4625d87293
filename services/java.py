"""Java servers assembled from Maven Central: the JDK, the jars, a compiled launcher.

A :class:`Bundle` is one server version's jars (resolved from a pom in ``services/java``)
plus, optionally, a small launcher class compiled against them, all kept in the shared cache
(``~/.cache/changehub/services/<name>-<version>/{lib,classes}``) so that only the first start
on a machine resolves or compiles anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services import apt, maven
from services.errors import ServiceError
from services.lock import file_lock
from services.paths import cache_root

__all__ = ["APT_PACKAGES", "JAVA_DIR", "Bundle", "jdk"]

#: The JDK the servers run on (OpenSearch 2.19 and Kafka 4 need 17) and Maven to resolve jars.
APT_PACKAGES = ("openjdk-17-jdk-headless", "maven")
#: Where the poms, launchers and logging configurations live.
JAVA_DIR = Path(__file__).resolve().parent / "java"
MIN_JAVA = 17


def jdk() -> Path:
    """The JDK home to run servers with: $CHANGEHUB_JAVA_HOME, else Debian's JDK 17."""
    explicit = os.environ.get("CHANGEHUB_JAVA_HOME")
    candidates = [Path(explicit)] if explicit else sorted(Path("/usr/lib/jvm").glob("java-17-*"))
    for home in candidates:
        if (home / "bin" / "java").exists() and (home / "bin" / "javac").exists():
            return home
    raise ServiceError(
        "no JDK 17 found (looked in $CHANGEHUB_JAVA_HOME and /usr/lib/jvm/java-17-*): run "
        "`services/run install NAME` or `apt-get install openjdk-17-jdk-headless`"
    )


@dataclass(frozen=True)
class Bundle:
    """The jars of one server version, and a launcher compiled against them if it has one."""

    name: str
    pom: Path
    launcher: Path | None = None

    @property
    def home(self) -> Path:
        return cache_root() / self.name

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def classes(self) -> Path:
        return self.home / "classes"

    def classpath(self) -> str:
        jars = str(self.lib / "*")
        return f"{self.classes}{os.pathsep}{jars}" if self.launcher else jars

    def missing(self) -> list[str]:
        missing = apt.missing_packages(APT_PACKAGES)
        if not maven.resolved(self.pom, self.lib):
            missing.append(f"the jars of {self.pom.relative_to(JAVA_DIR.parent.parent)}")
        if self.launcher and not self._compiled():
            missing.append(f"{self.launcher.name} compiled into {self.classes}")
        return missing

    def install(self) -> None:
        apt.install(APT_PACKAGES)
        with file_lock(self.home / ".lock"):
            maven.resolve(self.pom, self.lib)
            if self.launcher and not self._compiled():
                self._compile(self.launcher)

    def _stamp(self) -> str:
        assert self.launcher is not None
        digest = hashlib.sha256(self.launcher.read_bytes())
        digest.update((self.lib.with_name("lib.sha256")).read_bytes())
        return digest.hexdigest()

    def _compiled(self) -> bool:
        stamp = self.home / "classes.sha256"
        return (
            self.classes.is_dir()
            and stamp.exists()
            and maven.resolved(self.pom, self.lib)
            and stamp.read_text().strip() == self._stamp()
        )

    def _compile(self, source: Path) -> None:
        partial = self.home / "classes.partial"
        shutil.rmtree(partial, ignore_errors=True)
        javac = jdk() / "bin" / "javac"
        argv = [str(javac), "-d", str(partial), "-cp", str(self.lib / "*"), str(source)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        if result.returncode != 0:
            raise ServiceError(f"compiling {source} failed:\n{result.stdout}{result.stderr}")
        shutil.rmtree(self.classes, ignore_errors=True)
        partial.rename(self.classes)
        (self.home / "classes.sha256").write_text(self._stamp() + "\n")
