"""The runbooks (docs/runbooks/) give only commands the tests run: every
`ansible-playbook` line names a playbook of the kit, and each -e variable and --tags
value on it, that a Molecule scenario or a test also uses. Each page has the sections
an operator looks for."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs/runbooks"
PAGES = ["onboard-a-host", "migrate-to-the-kit", "rolling-upgrade", "drain-a-host", "rotate-secrets",
         "disk-full", "corrupt-mirror", "runs-stuck-running", "rollback-venv", "server-busy"]
SECTIONS = ["Symptoms", "Commands", "Verify", "Roll back"]


def exercised() -> str:
    """What the scenarios and tests run: their sources."""
    files = [p for p in (REPO / "molecule").rglob("*") if p.suffix in (".py", ".yml")]
    files += [p for p in (REPO / "tests").rglob("*.py") if p.name != Path(__file__).name]
    return "\n".join(p.read_text() for p in files)


def commands(page: Path) -> list[list[str]]:
    """The ansible-playbook command lines of a page's shell blocks, continuations joined."""
    found = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", page.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ")
            if line.startswith("ansible-playbook "):
                found.append(shlex.split(line))
    return found


@pytest.mark.parametrize("name", PAGES)
def test_each_runbook_has_its_sections_and_is_indexed(name):
    page = RUNBOOKS / f"{name}.md"
    assert page.is_file(), f"missing runbook {page}"
    text = page.read_text()
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    for section in SECTIONS:
        assert any(h.strip().lower().startswith(section.lower()) for h in headings), f"{name}: no '{section}' section"
    assert f"{name}.md" in (RUNBOOKS / "README.md").read_text(), f"{name} is not in docs/runbooks/README.md"


@pytest.mark.parametrize("name", PAGES)
def test_every_playbook_command_of_a_runbook_is_exercised(name):
    tested = exercised()
    for argv in commands(RUNBOOKS / f"{name}.md"):
        playbooks = [a for a in argv if a.endswith(".yml")]
        assert len(playbooks) == 1, argv
        playbook = Path(playbooks[0]).name
        assert (REPO / "playbooks" / playbook).is_file(), f"{name}: {playbook} is not a playbook of the kit"
        assert re.search(rf"playbooks/{re.escape(playbook)}|\b{re.escape(playbook)}\b", tested), \
            f"{name}: no scenario or test runs {playbook}"
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-e", "--extra-vars") and "=" in value and not value.startswith("@"):
                var = value.split("=", 1)[0]
                assert re.search(rf"\b{re.escape(var)}\b", tested), f"{name}: no scenario or test sets {var} ({argv})"
            if flag == "--tags":
                for tag in value.split(","):
                    # as a command line argument: --tags TAG, "--tags", "TAG" or [..., --tags, TAG]
                    used = rf"--tags[\"',\s=]+([\w,]+,)?{re.escape(tag)}\b"
                    assert re.search(used, tested), f"{name}: no scenario or test runs a playbook with --tags {tag}"


def test_runbooks_give_commands():
    assert sum(len(commands(RUNBOOKS / f"{name}.md")) for name in PAGES) >= 9
