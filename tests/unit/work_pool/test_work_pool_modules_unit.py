"""The collection's modules without a server: their documentation, as ansible-doc shows
it with the shared doc fragment merged in, matches their argument specs (like ansible-test's
validate-modules), and the shared helpers do what the modules rely on."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from collection_helpers import COLLECTIONS, REPO, collection_module  # noqa: E402

PLUGINS = REPO / "plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py"))
prefect_api = collection_module("plugins.module_utils.prefect_api")


@pytest.fixture(scope="module")
def docs() -> dict:
    """Each module's documentation as `ansible-doc --json` gives it."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS))
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "-t", "module",
                          *("prefect_fleet.fleet." + m for m in MODULES)],
                         capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return {name.rsplit(".", 1)[1]: value for name, value in json.loads(out.stdout).items()}


@pytest.fixture(scope="module", params=MODULES)
def module(request):
    return collection_module("plugins.modules." + request.param)


def test_the_collection_ships_its_modules():
    assert MODULES == ["prefect_api_info", "prefect_global_concurrency_limit", "prefect_work_pool", "prefect_work_queue"]


def test_documentation_matches_the_argument_spec(module, docs):
    shown = docs[module.__name__.rsplit(".", 1)[1]]
    doc = shown["doc"]
    assert shown["examples"].strip() and shown["return"], doc["module"]
    spec = module.argument_spec()
    options = doc["options"]
    assert sorted(options) == sorted(spec)
    for name, arg in spec.items():
        opt = options[name]
        assert opt["type"] == arg.get("type", "str"), name
        assert bool(opt.get("required")) == bool(arg.get("required")), name
        assert opt.get("default") == arg.get("default"), name
        assert opt.get("choices") == arg.get("choices"), name
        assert opt.get("description"), name
    assert spec["api_key"]["no_log"] is True
    assert doc["attributes"]["check_mode"]["support"] == "full"


def test_modules_do_not_import_prefect():
    for path in [*(PLUGINS / "modules").glob("*.py"), *(PLUGINS / "module_utils").glob("*.py")]:
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not any(name == "prefect" or name.startswith("prefect.") for name in imported), path.name


def test_flat_changes_names_nested_fields_by_their_path():
    before = {"a": 1, "t": {"v": {"command": {"default": "x", "title": "C"}}}, "gone": 1}
    after = {"a": 1, "t": {"v": {"command": {"default": "y", "title": "C"}}}, "new": None}
    assert prefect_api.flat_changes(before, after) == (
        {"gone": 1, "t.v.command.default": "x"},
        {"new": None, "t.v.command.default": "y"},
    )
    assert prefect_api.flat_changes(before, before) == ({}, {})


def test_zero_and_none_are_different_changes():
    assert prefect_api.flat_changes({"limit": None}, {"limit": 0}) == ({"limit": None}, {"limit": 0})


def test_job_variables_become_defaults_and_env_merges():
    template = {
        "job_configuration": {"command": "{{ command }}", "env": "{{ env }}"},
        "variables": {"properties": {"command": {"type": "string"}, "env": {"type": "object", "default": {"A": "1"}}}},
    }
    result, unknown = prefect_api.apply_job_variables(
        template, {"command": "/v/bin/python -m prefect.engine", "env": {"B": "2"}, "nope": 1})
    props = result["variables"]["properties"]
    assert props["command"]["default"] == "/v/bin/python -m prefect.engine"
    assert props["env"]["default"] == {"A": "1", "B": "2"}
    assert unknown == ["nope"]
    assert "default" not in template["variables"]["properties"]["command"]  # the input is not changed


@pytest.mark.parametrize("template, problem", [
    ({"job_configuration": {"c": "{{ c }}"}}, "missing or empty: variables"),
    ({"variables": {"properties": {}}}, "missing or empty: job_configuration"),
    ({"job_configuration": {"c": "{{ c }}"}, "variables": {"properties": {"d": {}}}}, "does not declare: c"),
    ({"job_configuration": {"c": "{{ c }}"}, "variables": {"properties": {"c": {}}}}, None),
])
def test_template_shape_is_checked_like_the_server_does(template, problem):
    found = prefect_api.template_shape_error(template)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("body, detail", [
    (b'{"detail": "Work pool \\"x\\" not found."}', 'Work pool "x" not found.'),
    (json.dumps({"exception_message": "Invalid request received.", "exception_detail": [
        {"loc": ["body", "concurrency_limit"], "msg": "Input should be greater than or equal to 0"}]}).encode(),
     "concurrency_limit: Input should be greater than or equal to 0"),
    (b"<html>Bad gateway</html>", "<html>Bad gateway</html>"),
    (b"", ""),
])
def test_error_details_are_readable(body, detail):
    assert prefect_api.error_detail(body) == detail
