"""Debian packages: find what is missing, install it with apt-get.

Parallel callers (two pytest sessions, a developer's shell) are serialised by a file lock,
and apt's own lock is waited for rather than failed on, so that an install started
elsewhere on the machine does not break ours.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from services.errors import ServiceError
from services.lock import file_lock
from services.paths import cache_root

__all__ = ["install", "missing_packages"]


def missing_packages(packages: Sequence[str]) -> list[str]:
    """The packages of ``packages`` that dpkg does not list as installed."""
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or result.stdout.strip() != "install ok installed":
            missing.append(package)
    return missing


def _apt_get(*args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=600", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise ServiceError(
            f"`{' '.join(argv)}` failed with exit code {result.returncode}:\n" + "\n".join(output)
        )


def install(packages: Sequence[str]) -> None:
    """apt-get update, then install the missing ones of ``packages`` (nothing if none is)."""
    with file_lock(cache_root() / "apt.lock"):
        missing = missing_packages(packages)
        if not missing:
            return
        if os.geteuid() != 0:
            raise ServiceError(
                f"Debian packages {', '.join(missing)} are missing and installing them needs "
                f"root: run `sudo apt-get update && sudo apt-get install {' '.join(missing)}`"
            )
        _apt_get("update")
        _apt_get("install", "--no-install-recommends", *missing)
