"""The Prefect versions the kit supports, and where each one is installed on the control node.

  python3 scripts/lib/prefect_versions.py            every supported version, the default first
  python3 scripts/lib/prefect_versions.py --default  the default version
  python3 scripts/lib/prefect_versions.py --bin V    the bin directory of version V's venv

A supported version is one with a lock in constraints/ (scripts/lock writes them). The
default is the one requirements.txt pins: the project venv (.venv) has it. scripts/bootstrap
installs each other version into a venv of its own, .cache/prefect-venvs/VERSION, for the
tests that check a Prefect fact on every supported version and for test servers of that
version (scripts/lib/test-server --prefect VERSION).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / ".cache/test-server-templates"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def default() -> str:
    match = re.search(r"^prefect==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    if not match:
        raise SystemExit("prefect_versions: requirements.txt pins no prefect")
    return match.group(1)


def supported() -> list[str]:
    """Every version with a constraints file, the default first, then newest first."""
    found = [p.name[len("prefect-"):-len(".txt")] for p in (REPO / "constraints").glob("prefect-*.txt")]
    first = default()
    return sorted(found, key=lambda v: (v != first, tuple(-n for n in _key(v))))


def constraints(version: str) -> Path:
    return REPO / "constraints" / f"prefect-{version}.txt"


def bin_dir(version: str) -> Path:
    if version not in supported():
        raise SystemExit(f"prefect_versions: Prefect {version} is not supported here (constraints/ has "
                         f"{', '.join(supported())})")
    if version == default():
        return REPO / ".venv/bin"
    return REPO / ".cache/prefect-venvs" / version / "bin"


def migrated_database(version: str) -> Path:
    """An empty SQLite database migrated by this Prefect version, made once (under a lock: test
    servers started side by side may ask for it at the same time). A server started on a copy
    skips the ~10 s that migrating an empty database takes (scripts/lib/test-server --fresh,
    the pytest servers of tests/conftest.py)."""
    done = TEMPLATES / version / "prefect.db"
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    with open(TEMPLATES / f"{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return done
        work = Path(tempfile.mkdtemp(dir=TEMPLATES))
        env = {**os.environ, "PREFECT_HOME": str(work), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        prefect = bin_dir(version) / "prefect"
        out = subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env,
                             capture_output=True, text=True)
        if out.returncode != 0 or not (work / "prefect.db").exists():
            shutil.rmtree(work, ignore_errors=True)
            raise SystemExit(f"prefect_versions: migrating an empty database failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        done.parent.mkdir(exist_ok=True)
        (work / "prefect.db").rename(done)
        shutil.rmtree(work, ignore_errors=True)
        return done


def main(argv: list[str]) -> int:
    if argv[:1] == ["--default"]:
        print(default())
    elif argv[:1] == ["--bin"] and len(argv) == 2:
        print(bin_dir(argv[1]))
    elif not argv:
        print("\n".join(supported()))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
