"""New inputs build a new generation; failures leave `current` alone; rollback works."""

import json

import pytest

ENVS = "/srv/prefect/envs"
REPO_VARS = """
    __repo: "{{ lookup('env', 'MOLECULE_PROJECT_DIRECTORY') }}"
    prefect_venv_wheelhouse: "{{ __repo }}/.cache/wheelhouse/{{ lookup('env', 'PREFECT_FLEET_RELEASE') }}/molecule"
    prefect_venv_build_env: {UV_INDEX_URL: "http://127.0.0.1:9/simple", HTTPS_PROXY: "http://127.0.0.1:9"}
"""


def play(envs: str) -> str:
    return f"""
- name: Apply prefect_venv
  hosts: all
  gather_facts: false
  vars:
{REPO_VARS}
    prefect_venv_envs:
{envs}
  roles:
    - role: prefect_fleet.fleet.prefect_venv
"""


def tiny(extra: str = "", requirements: str = "[]", state: str = "present") -> str:
    return f"""
      - name: tiny
        requirements: {requirements}
        state: {state}
        {extra}
"""


def current(host, env="tiny"):
    link = host.file(f"{ENVS}/{env}/current")
    return link.linked_to.rsplit("/", 1)[-1] if link.exists else None


def generations(host, env="tiny"):
    out = host.run("ls %s/%s", ENVS, env).stdout.split()
    return sorted(n for n in out if len(n) == 16)


def test_new_inputs_make_a_new_generation_and_keep_the_old(host, run_playbook):
    first = run_playbook(play(tiny()))
    assert first.rc == 0, first.output
    gen1 = current(host)
    again = run_playbook(play(tiny()))
    assert again.rc == 0 and next(iter(again.recap.values()))["changed"] == 0, again.output
    second = run_playbook(play(tiny(requirements="[six]")))
    assert second.rc == 0, second.output
    gen2 = current(host)
    assert gen2 != gen1
    assert generations(host) == sorted([gen1, gen2])
    assert host.run("%s/tiny/current/bin/python -c 'import six'", ENVS).rc == 0


@pytest.mark.parametrize(
    "case,requirements,extra,message",
    [
        ("requirement not in the wheelhouse", "[no-such-package-xyz==1.0]", "", "uv pip install failed"),
        ("smoke test import fails", "[six]", "imports: [no_such_module]", "smoke test failed"),
    ],
)
def test_failed_build_leaves_current_alone(host, run_playbook, case, requirements, extra, message):
    before = current(host)
    gens = generations(host)
    assert before
    result = run_playbook(play(tiny(extra=extra, requirements=requirements)))
    assert result.rc != 0, f"{case}: the build succeeded"
    assert message in result.output, result.output
    assert "tiny" in result.output
    assert current(host) == before
    assert generations(host) == gens, "the failed generation was left behind"
    assert host.run("%s/tiny/current/bin/python -c 'import prefect'", ENVS).rc == 0


def test_rollback_and_reconverge(host, run_playbook):
    latest = current(host)
    back = host.run("runuser -u prefect -- prefect-venv rollback --env-dir %s/tiny", ENVS)
    assert back.rc == 0, back.stderr
    result = json.loads(back.stdout)
    assert result["changed"] and result["previous"] == latest
    assert current(host) == result["generation"] != latest
    # The inventory still asks for the latest inputs: converging switches back without a build.
    reapply = run_playbook(play(tiny(requirements="[six]")))
    assert reapply.rc == 0, reapply.output
    assert current(host) == latest
    assert '"action": "switch"' in reapply.output or "switch" in reapply.output


def test_concurrent_builds_of_one_env_serialize(host):
    # Two builds of new inputs at once: the flock makes one build and the other reuse it.
    spec = f"{ENVS}/tiny/spec.json"
    host.run_test("cp %s /tmp/spec-concurrent.json && chown root:prefect /tmp/spec-concurrent.json", spec)
    host.run_test(
        """python3 - <<'EOF'
import json
p = "/tmp/spec-concurrent.json"
s = json.load(open(p)); s["requirements"] = ["six", "idna"]; json.dump(s, open(p, "w"))
EOF"""
    )
    result = host.run(
        "cd /tmp; for i in 1 2; do runuser -u prefect -- prefect-venv build --spec /tmp/spec-concurrent.json "
        "> /tmp/build-$i.out 2>&1 & done; wait; cat /tmp/build-1.out /tmp/build-2.out"
    )
    outputs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(outputs) == 2, result.stdout
    assert outputs[0]["generation"] == outputs[1]["generation"]
    assert sum(1 for o in outputs if o.get("action") == "build" and "build_seconds" in o) == 1, outputs


def test_absent_env_is_removed(host, run_playbook):
    result = run_playbook(play(tiny(state="absent")))
    assert result.rc == 0, result.output
    assert not host.file(f"{ENVS}/tiny").exists
    assert host.file(f"{ENVS}/flows/current").exists, "other environments stay"
