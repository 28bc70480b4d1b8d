"""One package under two names: ``finegrain`` (the distribution's name) and ``compiler`` (the
source folder's, which older scripts and the tests import).

Whichever name is imported first is the real package; its ``__init__`` calls `alias_package`,
which puts a finder first on ``sys.meta_path`` that serves every ``<other>.x.y`` as the module
object already imported, or imported now, as ``<real>.x.y``.  Importing both names from disk
would run every module twice and make two ``Graph`` classes, so ``isinstance`` and pickles
would fail across the names; with the alias there is one module per file, it keeps its own
``__spec__`` and ``__name__`` (the real name), and a pickle written under either name loads
under the other.  Standard library only: this runs before anything else in the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

NAMES = ("finegrain", "compiler")


class _AliasLoader:
    """Hands out an already imported module under another name (an importlib loader: importlib
    takes any object with these methods; importlib.abc would import importlib.resources and
    tempfile, 15 ms of every command)."""

    def __init__(self, module):
        self.module = module
        self.real_spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # importlib has just set module.__spec__ to the alias's spec: the module keeps its own
        module.__spec__ = self.real_spec

    def get_code(self, fullname):
        """The real module's code (runpy: ``python -m <alias>.cli`` once the real name is imported)."""
        return self.real_spec.loader.get_code(self.real_spec.name)


class AliasFinder:
    """Finds ``alias`` and ``alias.*`` as the modules ``real`` and ``real.*``."""

    def __init__(self, alias: str, real: str):
        self.alias, self.real = alias, real

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        real_name = self.real + fullname[len(self.alias):]
        try:
            module = importlib.import_module(real_name)
        except ModuleNotFoundError as err:
            if err.name == real_name:
                return None  # no such module under either name: the usual error, naming ``fullname``
            raise  # a module that exists but cannot import one of its own dependencies
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module), is_package=hasattr(module, "__path__"))


def alias_package(name: str) -> None:
    """Make the other of `NAMES` an alias of the package just being imported as ``name``."""
    if name not in NAMES:  # vendored under a third name: no alias
        return
    other = NAMES[1 - NAMES.index(name)]
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder(other, name))
