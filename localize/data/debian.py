"""Which Debian package a file comes from, its version and licence (``dpkg``), for provenance
in run records: e.g. the package and licence of each gettext catalog a corpus was read from.
Every lookup degrades to ``None``/``{}`` where dpkg is not installed."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=None)
def package_owners(paths: tuple[str, ...]) -> dict[str, str]:
    """``dpkg -S`` for many paths in one call → {path: package}; {} when dpkg is unavailable."""
    try:
        res = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    owners = {}
    for line in res.stdout.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        pkgs, p = line.rsplit(": ", 1)
        pkg = pkgs.split(",")[0].strip().split(":")[0]  # "libc-bin:amd64, x" -> libc-bin
        owners[p.strip()] = pkg
    return owners


def debian_package(path: str | os.PathLike) -> str | None:
    """The Debian package owning ``path`` (``dpkg -S``, cached), or ``None``."""
    return package_owners((str(path),)).get(str(path))


@functools.lru_cache(maxsize=None)
def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """``dpkg-query`` for many packages in one call → {package: version}; {} without dpkg."""
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *packages],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)


def debian_version(package: str | None) -> str | None:
    """Installed version of a Debian package (``dpkg-query``, cached), or ``None``."""
    return package_versions((package,)).get(package) if package else None


@functools.lru_cache(maxsize=None)
def debian_licence(package: str | None, doc_root: str = "/usr/share/doc") -> str | None:
    """First ``License:`` value in ``/usr/share/doc/<package>/copyright`` (DEP-5), or ``None``."""
    if not package:
        return None
    try:
        with open(Path(doc_root) / package / "copyright", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("License:"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        return None
    return None
