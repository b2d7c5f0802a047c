"""scripts/bench --only provision: `playbooks/site.yml` from scratch and again, on 1, 3 and 6 hosts.

For each fleet size it removes the benchmark's hosts (podman containers bench-prov-1..N of
the test-host image, as scripts/demo starts its hosts), starts N fresh ones, and times
`ansible-playbook playbooks/site.yml` twice with the demo's inventory variables
(inventories/local/group_vars and the demo's server and git daemon, started or reused with
`scripts/demo --runs 0`): from scratch, then the re-converge, which must report
changed=0 on every host. The per-host marginal cost is the slope between the smallest and
the largest fleet. Ansible reaches the hosts over ssh with pipelining, tunnelled through
`podman exec -i HOST sshd -i` as in the molecule scenarios. The hosts join the demo's
pools while they exist; they are removed at the end (also when the benchmark is stopped:
scripts/bench turns SIGTERM into an exit that runs the clean-up). The demo's own hosts are
paused meanwhile (podman pause): their pollers would load the same server and cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from bench_report import machine_line

PREFIX = "bench-prov"
SIZES = (1, 3, 6)
IMAGE = "localhost/prefect-fleet-host:bookworm"
TARGET_RECONVERGE_3 = 60.0  # seconds, re-converge of 3 hosts
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def names(n: int) -> list[str]:
    return [f"{PREFIX}-{i}" for i in range(1, n + 1)]


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(f"bench: podman {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result


def remove_hosts() -> None:
    listed = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    mine = [n for n in listed if re.fullmatch(rf"{PREFIX}-\d+", n)]
    if mine:
        podman("rm", "-f", "-t", "5", *mine)


def start_hosts(n: int, env: dict[str, str], repo: Path) -> None:
    # Root logs in with scripts/bootstrap's key, as in the molecule scenarios; a short stop
    # timeout, as an ssh master's `podman exec ... sshd -i` would hold `podman rm -f`.
    key = repo / ".cache/ssh/id_ed25519.pub"
    for name in names(n):
        subprocess.run(["podman", "run", "-d", "--name", name, "--hostname", name, "--label",
                        "org.prefect-fleet.bench=true", "--systemd=always", "--stop-timeout=1",
                        "-v", f"{key}:/root/.ssh/authorized_keys:ro", IMAGE, "/sbin/init"],
                       capture_output=True, text=True, env=env, check=True)
    for name in names(n):
        # Right after `podman run`, systemd may not have its bus up yet: `--wait` then fails at
        # once, with nothing on stdout. Ask again for up to a minute.
        deadline = time.monotonic() + 60
        while True:
            answer = podman("exec", name, "systemctl", "is-system-running", "--wait", check=False)
            state = answer.stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: systemd in {name} is '{state}': {answer.stderr.strip()[-500:]}")
            time.sleep(1)


def inventory(work: Path, n: int, repo: Path) -> Path:
    inv = work / "inventory"
    inv.mkdir(parents=True, exist_ok=True)
    hosts = "".join(f"        {name}: {{}}\n" for name in names(n))
    (inv / "hosts.yml").write_text(
        "---\nall:\n  children:\n    prefect_workers:\n      hosts:\n" + hosts +
        # How the demo's hosts are reached (inventories/local/hosts.yml): ssh, as users reach
        # theirs, tunnelled through `podman exec -i HOST sshd -i`, pipelined over a persistent
        # master (ansible.cfg); the key's path made absolute for this inventory's place.
        "      vars:\n" + (repo / "inventories/local/hosts.yml").read_text().split("      vars:\n", 1)[1]
        .replace("{{ inventory_dir }}/../..", str(repo)))
    link = inv / "group_vars"
    if not link.is_symlink():
        link.symlink_to(repo / "inventories/local/group_vars")
    return inv


def converge(repo: Path, inv: Path, env: dict[str, str], log_file: Path) -> tuple[float, int, int]:
    """Seconds, changed tasks on the worker hosts, and the playbook's exit code."""
    cmd = [str(repo / ".venv/bin/ansible-playbook"), "-i", str(inv), "playbooks/site.yml",
           "-e", f"@{repo / '.cache/demo/vars.yml'}"]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env=env)
    took = time.monotonic() - started
    with open(log_file, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n")
    changed = sum(int(c) for host, _ok, c, _u, _f in RECAP.findall(result.stdout) if host != "localhost")
    return took, changed, result.returncode


def module_seconds(repo: Path, inv: Path, env: dict[str, str], work: Path, tasks: int = 20) -> float:
    """Seconds per module run on one host over the same connection: a play of `tasks` pings
    minus a play of one, divided by the difference (Ansible's start-up cancels out)."""
    took = {}
    for count in (1, tasks + 1):
        play = work / f"ping-{count}.yml"
        play.write_text("---\n- name: Ping\n  hosts: prefect_workers\n  gather_facts: false\n  tasks:\n" +
                        "    - ansible.builtin.ping:\n" * count)
        started = time.monotonic()
        subprocess.run([str(repo / ".venv/bin/ansible-playbook"), "-i", str(inv), str(play)], capture_output=True,
                       text=True, cwd=repo, env=env, check=True)
        took[count] = time.monotonic() - started
    return (took[tasks + 1] - took[1]) / tasks


def items_per_host(log_text: str, host: str) -> int:
    """Task results (loop items counted one by one) that a play reported ok for host."""
    return len(re.findall(rf"^ok: \[{re.escape(host)}\]", log_text, re.M))


def bench(repo: Path, log, work: Path) -> dict:
    log("provision: starting or reusing the demo's server and git daemon (scripts/demo --runs 0) ...")
    demo = subprocess.run([str(repo / "scripts/demo"), "--runs", "0"], capture_output=True, text=True)
    if demo.returncode != 0:
        raise SystemExit(f"bench: scripts/demo failed:\n{demo.stdout[-3000:]}{demo.stderr[-3000:]}")
    os.environ["CONTAINERS_CONF"] = str(repo / "scripts/lib/containers.conf")  # runc, ulimits: as the demo's hosts
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    if not (repo / ".cache/ssh/id_ed25519").exists():
        raise SystemExit("bench: no ssh key in .cache/ssh/: run scripts/bootstrap")
    env.update(ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_PIPELINING="1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1",
               PATH=f"{repo / '.venv/bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / "provision.log"
    log_file.write_text("")
    rows = []
    unit, items = None, None
    # The demo's own hosts are not part of the measured fleet: frozen meanwhile (podman pause),
    # their workers and served flows would poll the server every second on the same cores.
    demo_hosts = [name for name in podman("ps", "--format", "{{.Names}}").stdout.split()
                  if re.fullmatch(r"prefect-fleet-\d+", name)]
    if demo_hosts:
        podman("pause", *demo_hosts)
    try:
        for n in SIZES:
            remove_hosts()
            start_hosts(n, env, repo)
            inv = inventory(work / f"hosts-{n}", n, repo)
            scratch, changed_scratch, rc = converge(repo, inv, env, log_file)
            if rc != 0:
                raise SystemExit(f"bench: site.yml from scratch on {n} host(s) failed; see {log_file}")
            before = len(log_file.read_text())
            again, changed_again, rc = converge(repo, inv, env, log_file)
            if rc != 0:
                raise SystemExit(f"bench: the re-converge of {n} host(s) failed; see {log_file}")
            if n == SIZES[0]:
                # What one task costs: the re-converge's time is about its task count times this.
                unit = module_seconds(repo, inv, env, work)
                items = items_per_host(log_file.read_text()[before:], names(n)[0])
            rows.append({"hosts": n, "scratch": scratch, "reconverge": again, "changed_scratch": changed_scratch,
                         "changed_again": changed_again})
            log(f"provision {n} host(s): from scratch {scratch:.1f}s, again {again:.1f}s "
                f"(changed={changed_again})")
    finally:
        remove_hosts()
        if demo_hosts:
            podman("unpause", *demo_hosts, check=False)
    return {**summarize(rows, unit, items), "log": str(log_file)}


def summarize(rows: list[dict], module_seconds: float | None = None, items_per_host: int | None = None) -> dict:
    """The rows with the per-host slope (smallest to largest fleet) and the 3-host re-converge;
    module_seconds and items_per_host (what one module run costs, how many task results a
    re-converge gives per host) are None when they were not measured."""
    first, last = rows[0], rows[-1]
    span = max(1, last["hosts"] - first["hosts"])
    three = next((r for r in rows if r["hosts"] == 3), None)
    return {"rows": rows,
            "marginal_scratch": (last["scratch"] - first["scratch"]) / span,
            "marginal_reconverge": (last["reconverge"] - first["reconverge"]) / span,
            "reconverge_3": three["reconverge"] if three else None,
            "all_idempotent": all(r["changed_again"] == 0 for r in rows),
            "module_seconds": module_seconds, "items_per_host": items_per_host}


def print_table(r: dict) -> None:
    print(f"\n{'hosts':>6}{'from scratch s':>16}{'re-converge s':>15}{'changed (again)':>17}")
    for row in r["rows"]:
        print(f"{row['hosts']:>6}{row['scratch']:>16.1f}{row['reconverge']:>15.1f}{row['changed_again']:>17}")
    print(f"\nper extra host: from scratch {r['marginal_scratch']:.1f} s, re-converge {r['marginal_reconverge']:.1f} s")
    if r["reconverge_3"] is not None:
        print(f"re-converge of 3 hosts {r['reconverge_3']:.1f} s (target <= {TARGET_RECONVERGE_3:.0f} s: "
              f"{'met' if r['reconverge_3'] <= TARGET_RECONVERGE_3 else 'NOT met'})")


def cost_lines(r: dict, facts: dict) -> list[str]:
    """Why a re-converge costs what it does, when the run measured it."""
    if r.get("module_seconds") is None or not r.get("items_per_host"):
        return []
    return [f"- Why a re-converge costs what it does: it reports {r['items_per_host']} task results per host "
            "as ok (loop items one by one; the checks ran on the control node, the others a module on the host), "
            "and one module run (`ansible.builtin.ping`, 20 in a row on one host over the same connection) takes "
            f"**{r['module_seconds']:.2f} s** here. A file or directory costs nothing when it is as wanted: each "
            "role reads all of its files with one command first and skips their tasks (otherwise a file costs two "
            f"module runs, a `stat`, then `file` for owner and mode). The {facts.get('cores', '?')} cores are "
            "shared by every host's modules, Ansible and the server."]


def markdown(r: dict, facts: dict) -> str:
    lines = [
        "## provision: `playbooks/site.yml` on 1, 3 and 6 hosts",
        "",
        "`scripts/bench --only provision`: fresh hosts of the test image (podman containers, systemd), the "
        "demo's inventory variables (inventories/local: a prebuilt venv with pandas from the wheelhouse, the git "
        "mirror, two workers and a warm launcher per host, the pools on localhost), `ansible-playbook "
        "playbooks/site.yml` from scratch, then once more; the demo's own hosts are paused meanwhile. Seconds, "
        "wall clock; `forks = 20` (ansible.cfg). "
        "One run of each size.",
        "",
        "| hosts | from scratch s | re-converge s | changed on the re-converge |",
        "|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['hosts']} | {row['scratch']:.1f} | {row['reconverge']:.1f} | {row['changed_again']} |")
    ok3 = r["reconverge_3"] is not None and r["reconverge_3"] <= TARGET_RECONVERGE_3
    lines += [
        "",
        f"- Each host beyond the first adds **{r['marginal_scratch']:.1f} s** from scratch and "
        f"**{r['marginal_reconverge']:.1f} s** to a re-converge (slope from the smallest to the largest fleet).",
        f"- Re-converge of 3 hosts: **{r['reconverge_3']:.1f} s** — target ≤ {TARGET_RECONVERGE_3:.0f} s: "
        f"{'met' if ok3 else 'NOT met'}.",
        f"- Every re-converge reported changed=0 on the hosts: {'yes' if r['all_idempotent'] else 'NO'}.",
        *cost_lines(r, facts),
        "- Ansible reaches these hosts over ssh, as users reach theirs (tunnelled through `podman exec -i HOST "
        "sshd -i`; pipelining and a persistent master, `ANSIBLE_PIPELINING=1`).",
        "",
        machine_line(facts),
    ]
    return "\n".join(lines)


def panel(r: dict) -> dict:
    return {"title": "provision: playbooks/site.yml (s)",
            "labels": [f"{row['hosts']} host{'s' if row['hosts'] > 1 else ''}" for row in r["rows"]],
            "stacked": False,
            "series": {"from scratch": [row["scratch"] for row in r["rows"]],
                       "re-converge": [row["reconverge"] for row in r["rows"]]}}


