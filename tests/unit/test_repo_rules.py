"""One rule for the repositories' URLs: the role's preflight (the filter
prefect_fleet.fleet.repo_problems) and the host command prefect-checkout (standard library
only, its own copy) accept and refuse the same URLs, and the filter's other rules (names,
credentials, uniqueness) say what is wrong without repeating a secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collection_helpers import REPO, collection_module  # noqa: E402

rules = collection_module("plugins.filter.repo_problems")
COMMAND = REPO / "roles/prefect_git_mirror/files/prefect-checkout"

# The table: a URL and whether the kit mirrors from it.
URLS = [
    ("https://git.example.com/org/flows.git", True),
    ("ssh://git@git.example.com:2222/org/flows.git", True),
    ("git@git.example.com:org/flows.git", True),
    ("git.example.com:org/flows.git", True),
    ("git://127.0.0.1/flows.git", True),
    ("file:///srv/origin/flows.git", True),
    ("/srv/origin/flows.git", True),
    ("http://git.example.com/org/flows.git", False),
    ("HTTPS://git.example.com/org/flows.git", False),
    ("ftp://git.example.com/flows.git", False),
    ("git+ssh://git@git.example.com/org/flows.git", False),
    ("ext::sh -c touch% /tmp/pwned", False),
    ("fd::17", False),
    ("transport::https://git.example.com/flows.git", False),
    ("https://bob:hunter2@git.example.com/org/flows.git", False),
    ("ssh://-oProxyCommand=touch%20x/flows.git", False),
    ("-oProxyCommand=x:flows.git", False),
    ("--upload-pack=touch x", False),
    ("https://git.example.com/flows.git\n[core]", False),
    ("file://host/srv/flows.git", False),
    ("relative/flows.git", False),
    ("", False),
]


def command_accepts(url: str, tmp_path: Path) -> bool:
    """prefect-checkout reads its configuration, then (for an accepted URL) fails later on the
    missing mirror or run: only a usage error about the URL counts as refusing it."""
    config = tmp_path / "checkout.json"
    config.write_text(json.dumps({
        "mirrors_dir": str(tmp_path / "mirrors"), "runs_dir": str(tmp_path / "runs"),
        "locks_dir": str(tmp_path / "locks"), "repos": {"flows": {"url": url}}}))
    proc = subprocess.run([sys.executable, str(COMMAND), "--config", str(config), "--repo", "other",
                           "--ref", "main", "--run-id", "r1"], capture_output=True, text=True, check=False)
    return "repos.flows" not in proc.stderr


@pytest.mark.parametrize("url, allowed", URLS, ids=[repr(u[0]) for u in URLS])
def test_role_and_command_accept_and_refuse_the_same_urls(url, allowed, tmp_path):
    problems = rules.repo_problems([{"name": "flows", "url": url}])
    assert (problems == []) is allowed, problems
    assert command_accepts(url, tmp_path) is allowed
    assert "hunter2" not in " ".join(problems)


@pytest.mark.parametrize("repos, says", [
    ([{"name": "a/b", "url": "file:///x"}], "item 'a/b': name must be"),
    ([{"name": "x..y", "url": "file:///x"}], "item 'x..y': name must be"),
    ([{"name": "d", "url": "file:///x"}, {"name": "d", "url": "file:///y"}], "duplicated: ['d']"),
    ([{"name": "u"}], "item 'u': needs a url"),
    ([{"name": "h", "url": "http://git.example.com/f.git"}], "scheme 'http' is not one the kit supports"),
    ([{"name": "e", "url": "ext::sh -c x"}], "'ext::' remote-helper transport"),
    ([{"name": "t", "url": "git@git.example.com:org/flows.git", "token": "abc"}], "'token' goes with an https url"),
    ([{"name": "k", "url": "https://git.example.com/f.git", "deploy_key": "KEY"}], "'deploy_key' goes with an SSH url"),
    ([{"name": 7, "url": "file:///x"}], "item 0: name must be"),
    (["flows"], "item 0: must be a mapping"),
])
def test_the_message_names_the_item_and_the_problem(repos, says):
    assert says in "; ".join(rules.repo_problems(repos))


def test_a_deploy_key_beside_a_transport_without_ssh_is_kept_unused():
    assert rules.repo_problems([{"name": "k", "url": "git://127.0.0.1/f.git", "deploy_key": "KEY"}]) == []


def test_an_absent_repository_and_an_absent_role_need_only_a_valid_name():
    assert rules.repo_problems([{"name": "gone", "state": "absent"}]) == []
    assert rules.repo_problems([{"name": "gone", "url": "http://x/y"}], urls=False) == []
    assert rules.repo_problems([{"name": "a/b", "state": "absent"}], urls=False) != []


def test_a_secret_is_never_repeated():
    problems = rules.repo_problems([{"name": "s", "url": "https://bob:hunter2@h/f.git", "token": "tok-123",
                                     "deploy_key": "KEY-456"}])
    assert problems and not any(s in p for p in problems for s in ("hunter2", "tok-123", "KEY-456"))
