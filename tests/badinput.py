"""The bad-input corpus's one check: a `finegrain` command line that must fail cleanly.

A clean failure is exit code 2 with one paragraph on stderr (``error: ...``, no blank line,
nothing after it) that names the problem, no traceback, and no output written: the folder
named by ``-o`` is either not created or left exactly as it was (a previous output intact),
and no temporary sibling folder (``.NAME.*``) is left beside it.  The corpus's cases live in
the ``tests/test_corpus_*.py`` files; each is one `expect_clean_failure` call.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from compiler.cli import main


def snapshot(folder: Path) -> dict[str, str] | None:
    """Every file below ``folder`` (relative path -> sha256), or None when it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if folder.is_file():
        return {"": hashlib.sha256(folder.read_bytes()).hexdigest()}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _temporaries(out: Path) -> list[str]:
    parent = out.parent
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def expect_clean_failure(capsys, argv, mention=(), out=None, keep=()) -> str:
    """Run ``finegrain argv`` in-process and check it failed cleanly; return its message.

    ``mention``: strings (or regular expressions, as ``re.Pattern``) the message must hold,
    compared with white space folded and case ignored.  ``out``: the output path the command
    would write; it must be as it was before (absent, or every file unchanged) with no
    temporary sibling.  ``keep``: other paths (inputs, previous outputs) that must not change.
    """
    watched = [Path(p) for p in ([out] if out is not None else []) + list(keep)]
    before = {p: snapshot(p) for p in watched}
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "Traceback" not in captured.out, err
    assert code == 2, f"exit code {code}, expected 2; stderr:\n{err}"
    start = err.find("error: ")
    assert start >= 0, f"no 'error: ' paragraph on stderr:\n{err}"
    paragraph = err[start:].strip("\n")
    assert "\n\n" not in paragraph and "error: " not in paragraph[7:], f"more than one paragraph:\n{err}"
    text = " ".join(paragraph[len("error: "):].split()).lower()
    for m in mention:
        if isinstance(m, re.Pattern):
            assert re.search(m.pattern, text, m.flags | re.IGNORECASE), f"{m.pattern!r} not in: {text}"
        else:
            assert " ".join(str(m).split()).lower() in text, f"{m!r} not in: {text}"
    for p in watched:
        assert snapshot(p) == before[p], f"{p} changed"
    if out is not None:
        assert not _temporaries(Path(out)), f"temporary folders left: {_temporaries(Path(out))}"
    return text
