"""scripts/bench --only env: what a flow run that needs prefect and pandas pays for its
Python environment, three ways, in one run:

  pip       what Prefect's `pip_install_requirements` pull step leaves to every run: a fresh
            `python3 -m venv` and `pip install -r requirements.txt` into it
  uv        the same with uv: `uv venv` and `uv pip install -r requirements.txt`
  prebuilt  the kit's prefect_venv: the environment is built once by `prefect-venv build`
            (the role's builder, outside the timing); a run only starts its python

requirements.txt is `prefect==PIN` (the kit's pin) and `pandas`, installed with the kit's
constraints (-c). pip and uv install from the same local wheelhouse (scripts/wheelhouse,
made once and kept under .cache/bench/wheels) with --no-index, so no repetition touches
the network, and with no cache of their own (pip --no-cache-dir, uv --no-cache: a
temporary cache per command), so no repetition installs from what an earlier one kept.

Each interleaved repetition times, per method, the build (nothing for prebuilt) and then
`python -c "import prefect, pandas"` in that environment, process start included: a run
pays both. Installers and imports run without the caller's PIP_*, UV_* and PYTHON*
variables or pip and uv configuration files, as a worker's unit would.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_report import machine_line

METHODS = ("pip", "uv", "prebuilt")
IMPORT = "import prefect, pandas"
WHAT = {
    "pip": "fresh `python3 -m venv` + `pip install -r` (Prefect's `pip_install_requirements`)",
    "uv": "fresh `uv venv` + `uv pip install -r`",
    "prebuilt": "the kit's prebuilt venv (`prefect_venv`), built once beforehand",
}


def kit_pin(repo: Path) -> tuple[Path, str]:
    """The constraints file of requirements.in (`-c FILE`) and the Prefect version it pins."""
    line = next(line for line in (repo / "requirements.in").read_text().splitlines() if line.startswith("-c "))
    constraints = repo / line.split(None, 1)[1].strip()
    pin = next(line.split("==", 1)[1].split(";")[0].strip() for line in constraints.read_text().splitlines()
               if line.startswith("prefect=="))
    return constraints, pin


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without what steers pip, uv or Python, and no config files.
    Temporary files (uv's cache of one command, pip's build directories) go under home, on the
    filesystem of the environments, as on a host: uv hard-links what it unpacks into an
    environment, and across filesystems it copies every file instead (seconds more per build)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "PYTHON", "VIRTUAL_ENV", "CONDA_", "PREFECT_"))}
    (home / "tmp").mkdir(exist_ok=True)
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1",
                "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", "PREFECT_HOME": str(home / "prefect-home"),
                "TMPDIR": str(home / "tmp")})
    return env


def check(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def wheelhouse(repo: Path, cache: Path, version: str, constraints: Path, pin: str) -> Path:
    """The wheels of prefect==pin and pandas for Python version (scripts/wheelhouse; kept while its inputs hold)."""
    out = cache / "wheels"
    glibc = platform.libc_ver()[1] or "2.36"
    check([str(repo / "scripts/wheelhouse"), "--out", str(out), "--python-version", version, "--glibc", glibc,
           "-c", str(constraints), f"prefect=={pin}", "pandas"])
    return out


def prebuilt(repo: Path, cache: Path, python: str, uv: Path, wheels: Path, constraints: Path, pin: str,
             env: dict[str, str]) -> Path:
    """The kit's prebuilt environment, built (or found built) by the role's own builder; its python."""
    spec = cache / "env" / "prebuilt.json"
    (cache / "env" / "locks").mkdir(parents=True, exist_ok=True)  # made by the role on a host
    spec.write_text(json.dumps({
        "name": "bench", "env_dir": str(cache / "env" / "prebuilt"), "locks_dir": str(cache / "env" / "locks"),
        "python": python, "installer": "uv", "uv": str(uv), "prefect_version": pin, "requirements": ["pandas"],
        "constraints": constraints.read_text().splitlines(), "imports": ["pandas"], "wheelhouse": str(wheels),
        "keep": 1,
    }))
    builder = repo / "roles/prefect_venv/files/prefect-venv"  # installed on hosts by the role; run here by python
    check([python, str(builder), "build", "--spec", str(spec)], {**env, "UV_NO_CACHE": "1"})
    return cache / "env" / "prebuilt" / "current" / "bin" / "python"


def build_commands(method: str, dest: Path, python: str, uv: Path, wheels: Path, constraints: Path,
                   requirements: Path) -> list[list[str]]:
    source = ["--no-index", "--find-links", str(wheels), "-c", str(constraints), "-r", str(requirements)]
    if method == "pip":
        return [[python, "-m", "venv", str(dest)],
                [str(dest / "bin/python"), "-m", "pip", "install", "--quiet", "--no-cache-dir", *source]]
    return [[str(uv), "venv", "--quiet", "--python", python, str(dest)],
            [str(uv), "pip", "install", "--quiet", "--no-cache", "--python", str(dest / "bin/python"), *source]]


def timed(cmds: list[list[str]], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    for cmd in cmds:
        check(cmd, env, cwd)
    return time.perf_counter() - started


def du_kib(path: Path) -> int:
    return int(check(["du", "-sk", str(path.resolve())]).split()[0])


def stats(values: list[float], percentile) -> dict[str, float]:
    return {"median": statistics.median(values), "p90": percentile(values, 0.9), "min": min(values)}


def bench(repo: Path, cache: Path, python: str, reps: int, work_dir: Path, log, percentile,
          discard=None, remove_each_rep: bool = False) -> dict:
    """discard(path): takes the directory of the built environments when done (scripts/bench removes
    it later, while nothing is timed); without it they are removed here. remove_each_rep: remove a
    repetition's environments as soon as it is measured (for a tmpfs, where that costs the next
    writer nothing and keeps the memory used to one repetition's)."""
    uv = repo / ".venv" / "bin" / "uv"
    if not os.access(uv, os.X_OK):
        raise SystemExit(f"bench: env needs {uv}: run scripts/bootstrap")
    constraints, pin = kit_pin(repo)
    log(f"env: wheelhouse of prefect=={pin} and pandas (scripts/wheelhouse, made once) ...")
    version = check([python, "-c", "import platform; print(platform.python_version())"]).strip()
    wheels = wheelhouse(repo, cache, version, constraints, pin)
    work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-env.", dir=work_dir))
    try:
        env = clean_env(work)
        log("env: the prebuilt environment (prefect-venv build, kept between runs) and a first import, not timed ...")
        prebuilt_python = prebuilt(repo, cache, python, uv, wheels, constraints, pin, env)
        check([str(prebuilt_python), "-c", IMPORT], env, work)
        requirements = work / "requirements.txt"
        requirements.write_text(f"prefect=={pin}\npandas\n")
        times: dict[str, dict[str, list[float]]] = {m: {"build": [], "import": []} for m in METHODS}
        disk: dict[str, int] = {}
        for i in range(reps):
            for method in METHODS[i % len(METHODS):] + METHODS[:i % len(METHODS)]:  # interleaved, rotating
                dest = work / f"{method}-{i}"
                cmds = [] if method == "prebuilt" else build_commands(method, dest, python, uv, wheels, constraints,
                                                                      requirements)
                env_python = prebuilt_python if method == "prebuilt" else dest / "bin" / "python"
                times[method]["build"].append(timed(cmds, env, work))
                times[method]["import"].append(timed([[str(env_python), "-c", IMPORT]], env, work))
                if method not in disk:
                    disk[method] = du_kib(env_python.parent.parent)
                os.sync()  # outside the timing: the next method must not pay for this one's writeback
            if i == 0:
                pip = check([str(work / "pip-0" / "bin" / "python"), "-m", "pip", "--version"], env).split()[1]
            if remove_each_rep:
                for method in METHODS:
                    shutil.rmtree(work / f"{method}-{i}", ignore_errors=True)
            log(f"env repetition {i + 1}/{reps}: " + ", ".join(
                f"{m} {times[m]['build'][-1]:.2f}+{times[m]['import'][-1]:.2f}s" for m in METHODS))
        versions = {"python": version, "pip": pip, "uv": check([str(uv), "--version"]).split()[1]}
    finally:
        if discard is not None:
            discard(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    rows = []
    for m in METHODS:
        build, imports = times[m]["build"], times[m]["import"]
        rows.append({"method": m, "build": stats(build, percentile), "import": stats(imports, percentile),
                     "total": stats([b + i for b, i in zip(build, imports)], percentile), "disk_kib": disk[m]})
    total = {row["method"]: row["total"]["median"] for row in rows}
    return {"reps": reps, "prefect": pin, "constraints": str(constraints.relative_to(repo)),
            "wheels": len(list(wheels.glob("*.whl"))), "versions": versions, "rows": rows,
            "ratio_uv_pip": total["uv"] / total["pip"], "ratio_prebuilt_uv": total["prebuilt"] / total["uv"],
            "ratio_prebuilt_pip": total["prebuilt"] / total["pip"]}


def verdict_line(r: dict) -> str:
    total = {row["method"]: row["total"]["median"] for row in r["rows"]}
    return (f"per run (build + import, medians): uv / pip {r['ratio_uv_pip']:.2f} ({total['uv']:.2f} s vs "
            f"{total['pip']:.2f} s); prebuilt / uv {r['ratio_prebuilt_uv']:.2f} and prebuilt / pip "
            f"{r['ratio_prebuilt_pip']:.2f} ({total['prebuilt']:.2f} s, the import alone): the prebuilt venv saves "
            f"{total['pip'] - total['prebuilt']:.1f} s per run over pip and {total['uv'] - total['prebuilt']:.1f} s "
            "over uv")


def print_table(r: dict) -> None:
    print(f"\n{'method':<10}{'build median':>14}{'import median':>15}{'per run median':>16}{'p90':>8}{'min':>8}"
          f"{'env MiB':>9}")
    for row in r["rows"]:
        print(f"{row['method']:<10}{row['build']['median']:>14.2f}{row['import']['median']:>15.2f}"
              f"{row['total']['median']:>16.2f}{row['total']['p90']:>8.2f}{row['total']['min']:>8.2f}"
              f"{row['disk_kib'] / 1024:>9.0f}")
    print(f"\n{verdict_line(r)}")


def markdown(r: dict, facts: dict, quick: bool) -> str:
    lines = [
        "## env: per-run environment cost of a flow that needs prefect and pandas",
        "",
        f"`scripts/bench --only env{' --quick' if quick else ''}`: requirements `prefect=={r['prefect']}` and "
        f"`pandas` with `-c {r['constraints']}`, installed with `--no-index` from a local wheelhouse of "
        f"{r['wheels']} wheels (`scripts/wheelhouse`) and no installer cache (pip `--no-cache-dir`, uv "
        f"`--no-cache`); {r['reps']} interleaved repetitions of each method. Seconds, wall clock including "
        "process start: building the environment, then `python -c \"import prefect, pandas\"` in it. Python "
        f"{r['versions']['python']}, pip {r['versions']['pip']} (the venv's own), uv {r['versions']['uv']}.",
        "",
        "| method | what a run does | build median s | import median s | per run median s | p90 | min | "
        "environment size |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['method']} | {WHAT[row['method']]} | {row['build']['median']:.2f} | "
                     f"{row['import']['median']:.2f} | **{row['total']['median']:.2f}** | {row['total']['p90']:.2f} | "
                     f"{row['total']['min']:.2f} | {row['disk_kib'] / 1024:.0f} MiB |")
    lines += [
        "",
        f"- Verdict, {verdict_line(r)}.",
        "- pip writes bytecode while it installs; uv does not, so a uv-built environment's first import compiles "
        "it (its import column) and the prebuilt environment's was compiled by the builder's smoke test.",
        "- With a package index instead of the wheelhouse, pip and uv also pay for the downloads on every run "
        "(on every host, unless a cache is kept); the prebuilt environment does not.",
        *(["- Built on a tmpfs: the files an install writes stay in memory until they are written out on any "
            "filesystem, and the benchmark writes them out between methods, untimed; `--env-dir .cache/bench` "
            "builds them on disk instead, to compare. Each repetition's environments are removed as soon as it "
            "is measured; on a disk, removing these ~5 GiB of small files has to wait for a moment when nothing "
            "is timed."]
          if facts.get("environments built on", "").startswith("tmpfs") else []),
        "- Other work may share the machine: the load average is recorded; compare medians, not p90.",
        "",
        machine_line(facts),
    ]
    return "\n".join(lines)


def panel(r: dict) -> dict:
    """The chart's panel: build and import medians, stacked; the per-run median at the end."""
    return {"title": "env: per-run environment cost, prefect + pandas (median s)",
            "labels": [row["method"] for row in r["rows"]], "stacked": True,
            "series": {"build": [row["build"]["median"] for row in r["rows"]],
                       "import": [row["import"]["median"] for row in r["rows"]]},
            "totals": [row["total"]["median"] for row in r["rows"]]}
