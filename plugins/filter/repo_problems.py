# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kit's rules for prefect_git_mirror_repos, in one place.

``repos | prefect_fleet.fleet.repo_problems`` is the list of what is wrong with the
repositories (empty when nothing is), each a sentence naming the item. No sentence repeats
the URL's user information, the token or the deploy key. The host command prefect-checkout
keeps a standard-library copy of the URL rule (prefect_checkout.url_problem);
tests/unit/test_repo_rules.py keeps both deciding alike.
"""

from __future__ import annotations

import re

from ansible_collections.prefect_fleet.fleet.plugins.module_utils.names import name_ok

DOCUMENTATION = r"""
name: repo_problems
short_description: What is wrong with the repositories of prefect_git_mirror_repos
description:
  - An empty list when the kit can mirror every repository; otherwise one sentence per
    problem, naming the item.
  - The name is 1-128 letters, digits, C(.), C(_) and C(-), starting with a letter or digit,
    without C(..).
  - The URL is C(https://), C(ssh://), C(git://), C(file:///), an absolute path on the host
    or SSH's C([user@]host:path); git's other transports (C(http://), C(ext::), C(fd::) and
    other remote helpers) and relative paths are refused, as are a URL with a password or
    token in it, a URL or host starting with C(-), and control characters.
  - A C(token) goes with an C(https) URL; a C(deploy_key) never with one (git uses it over SSH).
  - Names are unique.
positional: _input
options:
  _input:
    description: The repositories (a list of mappings with C(name) and C(url)).
    type: raw
    required: true
  urls:
    description: Check URLs and credentials too (false when the role removes everything,
      where only names matter); a repository with C(state=absent) is only checked by name.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Check the repositories
  ansible.builtin.assert:
    that: (prefect_git_mirror_repos | prefect_fleet.fleet.repo_problems) == []
    fail_msg: "prefect_git_mirror_repos: {{ prefect_git_mirror_repos | prefect_fleet.fleet.repo_problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: The problems, empty when there are none.
  type: list
  elements: str
"""

SCHEMES = ("https", "ssh", "git", "file")


def url_kind(url):
    """(kind, problem): kind is one of SCHEMES for a URL the kit supports (an scp-like
    [user@]host:path is 'ssh'), problem '' then; otherwise kind is '' and problem says why."""
    if not isinstance(url, str) or not url:
        return "", "needs a url (a non-empty string)"
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        return "", "url must not hold control characters (a newline, a tab)"
    if url.startswith("-"):
        return "", "url must not start with '-' (git would read it as an option)"
    helper = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)::", url)
    if helper:
        return "", "url uses git's '%s::' remote-helper transport, which the kit refuses (it supports %s)" % (
            helper.group(1), ", ".join(SCHEMES))
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme:
        name = scheme.group(1)
        if name not in SCHEMES:
            hint = " (use https)" if name.lower() in ("http", "https") else ""
            return "", "url scheme '%s' is not one the kit supports (%s)%s" % (name, ", ".join(SCHEMES), hint)
        rest = url[len(scheme.group(0)):]
        if name == "file":
            if not rest.startswith("/"):
                return "", "a file url names an absolute path on the host: file:///path"
            return "file", ""
        authority = rest.split("/", 1)[0]
        userinfo, _, host = authority.rpartition("@")
        if ":" in userinfo:
            return "", "url must not embed a password or token (put a token in 'token', a key in 'deploy_key')"
        if not host or host.startswith("-"):
            return "", "url needs a host that does not start with '-'"
        return name, ""
    scp = re.match(r"^(?:([^@/:]*)@)?([^/:]*):", url)
    if scp:
        if not scp.group(2) or scp.group(2).startswith("-"):
            return "", "url needs a host that does not start with '-'"
        return "ssh", ""
    if url.startswith("/"):
        return "file", ""
    return "", "url is a relative path; write an absolute one or file:///path"


def repo_problems(repos, urls=True):
    if not isinstance(repos, list):
        return ["must be a list of repositories, got %s" % type(repos).__name__]
    problems = []
    names = [repo.get("name") if isinstance(repo, dict) else None for repo in repos]
    for index, repo in enumerate(repos):
        if not isinstance(repo, dict):
            problems.append("item %d: must be a mapping with 'name' and 'url'" % index)
            continue
        name = repo.get("name")
        label = "item '%s'" % name if isinstance(name, str) else "item %d" % index
        found = []
        if not name_ok(name, "repo"):
            found.append("name must be 1-128 letters, digits, '.', '_' and '-', starting with a letter "
                         "or digit, without '/' or '..'")
        if urls and repo.get("state", "present") != "absent":
            kind, problem = url_kind(repo.get("url"))
            if problem:
                found.append(problem)
            if "token" in repo and kind not in ("", "https"):
                found.append("'token' goes with an https url")
            if "deploy_key" in repo and kind == "https":
                found.append("'deploy_key' goes with an SSH url (ssh:// or host:path), not https")
        problems += ["%s: %s" % (label, problem) for problem in found]
    duplicated = sorted({name for name in names if isinstance(name, str) and names.count(name) > 1})
    if duplicated:
        problems.append("every name must be unique; duplicated: %s" % duplicated)
    return problems


class FilterModule:
    def filters(self):
        return {"repo_problems": repo_problems}
