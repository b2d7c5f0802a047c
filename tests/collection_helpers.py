"""Imports for tests of the kit's Python: the collection's plugins from the checkout, and
the host commands (files without a .py suffix) as modules.

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from collection_helpers import REPO, collection_module, host_command
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
# The checkout as the collection prefect_fleet.fleet (linked by scripts/bootstrap): the
# plugins import their shared code by its collection name, as Ansible runs them.
COLLECTIONS = REPO / ".cache" / "collections"
PACKAGE = "ansible_collections.prefect_fleet.fleet"


def collection_module(name: str) -> ModuleType:
    """collection_module("plugins.filter.paths"): the collection's module of that name."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    return importlib.import_module(f"{PACKAGE}.{name}")


def host_command(path: Path | str, name: str) -> ModuleType:
    """The host command at path (relative to the checkout) loaded as a module called name."""
    loader = importlib.machinery.SourceFileLoader(name, str(REPO / path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
