"""The playbooks and the example inventory: syntax, completeness, no secrets, and the
read-only operations playbooks (cleanup, verify) run against this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p.name for p in (REPO / "playbooks").glob("*.yml"))
INVENTORIES = ["inventories/example", "inventories/local"]
EXAMPLE = REPO / "inventories/example"
VAULT = EXAMPLE / "group_vars/all/vault.yml"
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta/argument_specs.yml").is_file())
# A Prefect Cloud API key: pnu_ and 36 letters or digits.
PREFECT_KEY = re.compile(r"pnu_[A-Za-z0-9]{36}")


def ansible(tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **kwargs.pop("env", {})}
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, cwd=REPO, env=env, **kwargs)


def spec(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def present(items: list[dict]) -> list[dict]:
    return [i for i in items if i.get("state", "present") == "present"]


# -- playbooks ------------------------------------------------------------------------


def test_the_kit_has_its_playbooks():
    assert {"site.yml", "workers.yml", "work_pools.yml", "cleanup.yml", "verify.yml", "uninstall.yml"} <= set(PLAYBOOKS)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_playbook_passes_syntax_check(inventory):
    result = ansible("ansible-playbook", "-i", inventory, "--syntax-check", *(f"playbooks/{p}" for p in PLAYBOOKS))
    assert result.returncode == 0, result.stdout + result.stderr
    for playbook in PLAYBOOKS:
        assert f"playbook: playbooks/{playbook}" in result.stdout


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_starts_with_a_header_saying_how_to_run_it(playbook):
    lines = (REPO / "playbooks" / playbook).read_text().splitlines()
    assert lines[0] == "---"
    header = []
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, f"{playbook} has no comment header"
    assert f"ansible-playbook -i inventories/example playbooks/{playbook}" in "\n".join(header)


def test_site_runs_the_control_plane_then_the_workers():
    pools, workers, report = yaml.safe_load((REPO / "playbooks/site.yml").read_text())
    (standalone,) = yaml.safe_load((REPO / "playbooks/work_pools.yml").read_text())
    # The control plane as work_pools.yml does it (same role, same condition), with a rescue
    # that lets the hosts converge when only the API is unreachable; the report fails then.
    assert pools["hosts"] == standalone["hosts"] == "localhost"
    (block,) = pools["tasks"]
    assert block["block"][0]["ansible.builtin.import_role"]["name"] == standalone["roles"][0]["role"] == "prefect_fleet.fleet.prefect_work_pool"
    assert block["when"] == standalone["roles"][0]["when"]
    assert "Cannot reach the Prefect API" in block["rescue"][0]["when"]
    assert workers["ansible.builtin.import_playbook"] == "workers.yml"
    assert report["hosts"] == "localhost" and report["tasks"][0]["when"] == "__prefect_fleet_api_unreachable is defined"


def test_workers_play_runs_the_host_roles_in_order():
    (play,) = yaml.safe_load((REPO / "playbooks/workers.yml").read_text())
    assert play["hosts"] == "prefect_workers" and play["become"] is True
    assert [r["role"] for r in play["roles"]] == ["prefect_fleet.fleet." + r for r in (
        "prefect_host", "prefect_venv", "prefect_git_mirror", "prefect_cleanup", "prefect_worker")]


def test_uninstall_removes_in_reverse_order_and_keeps_data_by_default():
    hosts, pools = yaml.safe_load((REPO / "playbooks/uninstall.yml").read_text())
    roles = hosts["roles"]
    assert [r["role"] for r in roles] == ["prefect_fleet.fleet." + r for r in (
        "prefect_worker", "prefect_cleanup", "prefect_git_mirror", "prefect_venv", "prefect_host")]
    for r in roles:
        assert r[f"{r['role'].rsplit('.', 1)[1]}_state"] == "absent"
    assert hosts["vars"]["prefect_fleet_purge"] is False
    assert pools["vars"]["prefect_fleet_remove_pools"] is False
    assert "prefect_fleet_purge" in roles[-1]["prefect_host_keep_data"]


# -- the example inventory ------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> dict:
    """Host variables of every host (flattened), and the `all` group's variables, which
    the control node (implicit localhost, the work pool play) gets."""
    flat = ansible("ansible-inventory", "-i", "inventories/example", "--list")
    assert flat.returncode == 0, flat.stderr
    export = ansible("ansible-inventory", "-i", "inventories/example", "--list", "--export")
    assert export.returncode == 0, export.stderr
    flat_data, export_data = json.loads(flat.stdout), json.loads(export.stdout)
    return {"hosts": flat_data["_meta"]["hostvars"], "all": export_data["all"].get("vars", {}), "groups": export_data}


def test_example_fleet_has_worker_groups_of_example_hosts(example):
    groups = example["groups"]
    assert len(groups["prefect_workers"]["children"]) >= 2
    assert 2 <= len(example["hosts"]) <= 3
    assert all(h.endswith(".example.com") for h in example["hosts"])


def test_example_sets_what_the_playbooks_need(example):
    control = example["all"]
    for name in ("prefect_work_pool_api_url", "prefect_work_pool_api_key", "prefect_work_pool_pools"):
        assert control.get(name), f"group_vars/all does not set {name}"
    assert all(pool.get("throttle_limit") is not None for pool in present(control["prefect_work_pool_pools"]))
    for host, hostvars in example["hosts"].items():
        for name in ("prefect_worker_api_url", "prefect_worker_api_key", "prefect_venv_envs",
                     "prefect_git_mirror_repos", "prefect_worker_instances"):
            assert hostvars.get(name), f"{host}: {name} is not set"


def missing_required(options: dict, value: object, where: str) -> list[str]:
    """Required sub-options absent from the items of a list of dicts (recursively)."""
    errors = []
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for name, option in options.items():
            if option.get("required") and name not in item:
                errors.append(f"{where}[{index}] has no {name}")
            if "options" in option and name in item:
                errors += missing_required(option["options"], item[name], f"{where}[{index}].{name}")
    return errors


@pytest.mark.parametrize("role", ROLES)
def test_example_defines_every_required_variable_of_each_role(example, role):
    # prefect_work_pool runs on the control node, the other roles on every worker host.
    targets = {"control node": example["all"]} if role == "prefect_work_pool" else example["hosts"]
    errors = []
    for target, variables in targets.items():
        for name, option in spec(role).items():
            if option.get("required") and name not in variables:
                errors.append(f"{target}: {name} is required")
            if "options" in option and name in variables:
                errors += missing_required(option["options"], variables[name], f"{target}: {name}")
    assert not errors, errors


def test_example_instances_fit_the_envs_and_pools(example):
    pools = {p["name"]: p for p in present(example["all"]["prefect_work_pool_pools"])}
    for host, hostvars in example["hosts"].items():
        envs = {e["name"] for e in present(hostvars["prefect_venv_envs"])}
        instances = present(hostvars["prefect_worker_instances"])
        default_env = hostvars.get("prefect_worker_default_env", "flows")
        for instance in instances:
            assert instance.get("env", default_env) in envs, f"{host}: {instance['name']} uses an env that is not built"
            assert instance["pool"] in pools, f"{host}: {instance['name']} polls a pool the inventory does not make"
        ports = [i.get("healthcheck_port", 8080) for i in instances]
        assert len(ports) == len(set(ports)), f"{host}: health ports clash"
        venvs = [example["all"].get("prefect_work_pool_venv", "/srv/prefect/envs/flows/current")]
        venvs += [p["venv"] for p in pools.values() if p.get("venv")]
        for venv in venvs:
            assert Path(venv).parent.name in envs, f"{host}: pools run {venv}, which is not built there"


def test_example_takes_every_secret_from_the_vault(example):
    vault = yaml.safe_load(VAULT.read_text())
    control, hosts = example["all"], example["hosts"]
    secrets = [control["prefect_work_pool_api_key"]]
    for hostvars in hosts.values():
        secrets.append(hostvars["prefect_worker_api_key"])
        for repo in hostvars["prefect_git_mirror_repos"]:
            secrets += [repo[k] for k in ("deploy_key", "token") if k in repo]
    for secret in secrets:
        match = re.fullmatch(r"\{\{ *(vault_[a-z0-9_]+) *\}\}", secret)
        assert match, f"a secret is set in plain text, not from the vault: {secret[:12]}..."
        assert match.group(1) in vault, f"{match.group(1)} is not in vault.yml"
    # ...and every vault variable the inventory refers to exists.
    text = "\n".join(p.read_text() for p in EXAMPLE.rglob("*.yml"))
    assert set(re.findall(r"\bvault_[a-z0-9_]+", text)) <= set(vault)


def test_example_values_render_without_a_vault_password(tmp_path):
    """The templated values (vault references, paths on the control node) resolve."""
    probe = tmp_path / "probe.yml"
    probe.write_text(yaml.safe_dump([{
        "name": "Render the example's variables", "hosts": "prefect_workers", "gather_facts": False,
        "tasks": [{"name": "Write them down", "delegate_to": "localhost", "ansible.builtin.copy": {
            "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}.json", "mode": "0600",
            "content": "{{ {'worker_key': prefect_worker_api_key, 'pool_key': prefect_work_pool_api_key,"
                       " 'pool_url': prefect_work_pool_api_url, 'worker_url': prefect_worker_api_url,"
                       " 'versions': prefect_venv_envs"
                       " | map(attribute='prefect_version', default=prefect_venv_prefect_version) | list} | to_json }}"}}]}]))
    result = ansible("ansible-playbook", "-i", "inventories/example", str(probe))
    assert result.returncode == 0, result.stdout + result.stderr
    vault = yaml.safe_load(VAULT.read_text())
    for host in ("etl-01.example.com", "ml-01.example.com"):
        values = json.loads((tmp_path / f"{host}.json").read_text())
        assert values["worker_key"] == values["pool_key"] == vault["vault_prefect_api_key"]
        assert values["pool_url"] == values["worker_url"] and values["worker_url"].startswith("https://")
        # Every env is on a release the kit has a lock of (prefect_venv uses it as the constraints).
        assert values["versions"] and all((REPO / f"constraints/prefect-{v}.txt").is_file() for v in values["versions"])


def test_example_vault_is_a_marked_example_without_real_secrets():
    text = VAULT.read_text()
    assert not text.startswith("$ANSIBLE_VAULT"), "the example vault must stay readable without a password"
    header = "\n".join(line for line in text.splitlines()[:12] if line.startswith("#"))
    assert "EXAMPLE" in header and "ansible-vault encrypt" in header and "ansible-vault create" in header
    for name, value in yaml.safe_load(text).items():
        assert name.startswith("vault_")
        assert value == "" or "EXAMPLE" in value, f"{name} does not look like a placeholder"
    for path in EXAMPLE.rglob("*"):
        if path.is_file():
            assert not PREFECT_KEY.search(path.read_text()), f"{path} holds something that looks like a Prefect API key"


def test_the_key_pattern_catches_a_real_looking_key():
    assert PREFECT_KEY.search('vault_prefect_api_key: "pnu_' + "a1B2" * 9 + '"')
    assert not PREFECT_KEY.search((VAULT).read_text())


# -- cleanup.yml against this machine -----------------------------------
# It runs its command with become on the hosts; as root on localhost that needs no sudo.
# verify.yml is tested on real hosts with a real server: molecule/fleet.

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("flock"),
    reason="runs the playbooks on localhost with become: needs root, runuser and flock")


def local_inventory(tmp_path: Path, **variables) -> Path:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"prefect_workers": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "vars": variables}}}}))
    return inventory


def kit_tree(root: Path) -> Path:
    for name in ("runs", "mirrors", "envs", "locks", "tmp", "log"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def cleanup_host(tmp_path):
    root = kit_tree(tmp_path / "srv")
    old = root / "runs/old-run"
    old.mkdir()
    (old / "file").write_text("x")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    (root / "runs/new-run").mkdir()
    bin_dir, config_dir = tmp_path / "bin", tmp_path / "etc"
    bin_dir.mkdir()
    config_dir.mkdir()
    shutil.copy(REPO / "roles/prefect_cleanup/files/prefect-cleanup", bin_dir / "prefect-cleanup")
    (bin_dir / "prefect-cleanup").chmod(0o755)
    (config_dir / "cleanup.json").write_text(json.dumps({
        "root": str(root), "ttl": 86400, "pressure_ttl": 3600, "min_free_percent": 0, "tmp_ttl": 86400,
        "log": str(root / "log/cleanup.log"), "lock_timeout": 5}))
    inventory = local_inventory(tmp_path, prefect_cleanup_root=str(root), prefect_cleanup_bin_dir=str(bin_dir),
                                prefect_cleanup_config_dir=str(config_dir))
    return inventory, root


def recap(output: str) -> dict:
    match = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output
    return {"ok": int(match.group(1)), "changed": int(match.group(2)), "failed": int(match.group(3))}


@needs_root
def test_cleanup_dry_run_in_check_mode_then_removes_and_reports(cleanup_host):
    inventory, root = cleanup_host
    dry = ansible("ansible-playbook", "-i", str(inventory), "playbooks/cleanup.yml", "--check", "-e", "prefect_cleanup_now_ttl=60")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert recap(dry.stdout)["changed"] == 1  # would remove
    assert "dry_run: true" in dry.stdout and "runs/old-run" in dry.stdout
    assert (root / "runs/old-run").exists()

    untouched = ansible("ansible-playbook", "-i", str(inventory), "playbooks/cleanup.yml")
    assert untouched.returncode == 0, untouched.stdout + untouched.stderr
    assert recap(untouched.stdout)["changed"] == 0  # the configured TTL (a day) spares the run
    assert (root / "runs/old-run").exists()

    real = ansible("ansible-playbook", "-i", str(inventory), "playbooks/cleanup.yml", "-e", "prefect_cleanup_now_ttl=60")
    assert real.returncode == 0, real.stdout + real.stderr
    assert recap(real.stdout)["changed"] == 1
    assert "bytes_freed" in real.stdout
    assert not (root / "runs/old-run").exists() and (root / "runs/new-run").exists()


@needs_root
def test_cleanup_rejects_a_bad_ttl(cleanup_host):
    inventory, _ = cleanup_host
    result = ansible("ansible-playbook", "-i", str(inventory), "playbooks/cleanup.yml", "-e", "prefect_cleanup_now_ttl=soon")
    assert result.returncode != 0
    assert "prefect_cleanup_now_ttl must be a number of seconds" in result.stdout
