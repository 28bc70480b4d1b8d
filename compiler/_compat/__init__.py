"""``import compiler`` in an installed finegrain: the package's old name (its source folder's),
kept for older scripts.  setup.cfg installs this file as the package ``compiler``; it imports
``finegrain`` (whose ``__init__`` makes ``compiler.*`` an alias of ``finegrain.*``, see
compiler/_alias.py) and puts that same module in its own place, so the wheel holds one copy of
every module.  In a checkout, ``compiler/`` itself is found first and this file is not used."""

import sys

import finegrain

sys.modules[__name__] = finegrain
