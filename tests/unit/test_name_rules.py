"""One rule per kind of name: the roles' preflights (the test prefect_fleet.fleet.kit_name,
module_utils/names.py) and the host commands (standard library only, their own copies)
accept and refuse the same environment and repository names, and the roles refuse a bad
name of each kind before anything changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collection_helpers import collection_module, host_command  # noqa: E402

names = collection_module("plugins.module_utils.names")
names_test = collection_module("plugins.test.names")
venv = host_command("roles/prefect_venv/files/prefect-venv", "prefect_venv_command")
checkout = host_command("roles/prefect_git_mirror/files/prefect_checkout.py", "prefect_checkout_command")

# The table: a name and whether it is an environment name / a repository name.
NAMES = [
    ("flows", True, True),
    ("ml-2.py_3", True, True),
    ("9lives", True, True),
    ("a" * 64, True, True),
    ("a" * 65, False, True),
    ("a" * 128, False, True),
    ("a" * 129, False, False),
    ("a..b", True, False),  # git refuses '..' in a ref, and a mirror's name is in its refs
    ("", False, False),
    (".hidden", False, False),
    ("-rf", False, False),
    ("_under", False, False),
    ("with space", False, False),
    ("a/b", False, False),
    ("flows\n", False, False),
    ("flöws", False, False),
]


def venv_accepts(name: str, tmp_path: Path) -> bool:
    """prefect-venv's spec reader: a refused name is its 'bad environment name' (or, for an
    empty one, "'name' is missing") failure."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": name, "env_dir": str(tmp_path / "env"), "locks_dir": str(tmp_path),
                                "python": sys.executable, "installer": "uv"}))
    try:
        venv.load_spec(spec)
    except venv.Failure as exc:
        return "bad environment name" not in str(exc) and "'name' is missing" not in str(exc)
    return True


def checkout_accepts(name: str) -> bool:
    try:
        checkout.check_name("repo", name)
    except checkout.Failure:
        return False
    return True


@pytest.mark.parametrize("name, env, repo", NAMES, ids=[repr(n[0][:20]) for n in NAMES])
def test_roles_and_commands_accept_and_refuse_the_same_names(name, env, repo, tmp_path):
    assert names.name_ok(name, "env") is env
    assert venv_accepts(name, tmp_path) is env
    assert names.name_ok(name, "repo") is repo
    assert checkout_accepts(name) is repo


@pytest.mark.parametrize("kind, good, bad", [
    ("unit", ["a", "worker-1.b_c"], ["", "-a", "a b", "a/b", "a" * 65]),
    ("pool", ["etl", "a" * 128], ["", "a b", "a/b", "a" * 129]),
    ("ref", ["main", "release/1.2", "v1"], ["", "-x", "a..b", "a b", "../x"]),
    ("entrypoint", ["flows/hello.py:hello", "a.py:_f"], ["hello.py", "a.py:1f", "../x.py:f", "a b.py:f"]),
    ("path", ["/srv/prefect/flows"], ["relative", "/srv/a b", "/srv/../etc", "/srv/$HOME"]),
    ("module", ["pandas", "my_pkg.flows"], ["", "my-pkg", "a..b", "1abc", "os; import x"]),
    ("account", ["prefect", "_svc", "a-b"], ["Prefect", "1abc", "a" * 33, "a b"]),
    ("mode", ["0750", "750", "2775"], ["0888", "75", "u+rwx", "077777"]),
    ("python", ["3", "3.11", "/usr/bin/python3"], ["python3", "3.x", "2.7", ""]),
    ("prefect_version", ["3.9.1", "3.10.0rc1", "3.9.1.post2"], ["3", "3.9.x", "latest", "3.9.1; rm"]),
])
def test_each_kind_of_name(kind, good, bad):
    assert [n for n in good if not names_test.kit_name(n, kind)] == []
    assert [n for n in bad if names_test.kit_name(n, kind)] == []


def test_a_value_that_is_not_a_string_is_no_name_and_an_unknown_kind_is_an_error():
    assert names_test.kit_name(7, "env") is False and names_test.kit_name(None, "unit") is False
    with pytest.raises(Exception, match="unknown kind of name 'nope'"):
        names_test.kit_name("x", "nope")
