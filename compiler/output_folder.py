"""Output folders: where `finegrain compile` may write, how it swaps a new folder in, and the
stamp that says a folder is one of ours.

Nothing the user owns is lost:

* an output folder is written whole into a temporary sibling (``.NAME.new-*``) and swapped in
  only when complete: the previous folder is renamed aside (``.NAME.old-*``), the new one renamed
  in, then the old one deleted, with SIGINT/SIGTERM blocked meanwhile, so an interrupted compile
  leaves the previous output or the new one, never neither;
* ``--force`` replaces only a folder holding a stamp (`STAMP`, JSON with the output format
  version), never the current folder, one above it, or one holding the inputs;
* one command at a time writes an output folder (compile, and csim, sim and report, which
  write into it): a lock file beside it (``.NAME.lock``, `fcntl.flock`); a second one fails at
  once, naming the lock;
* temporaries of a compile killed outright (SIGKILL cannot be handled) are removed by the next
  compile into the same folder, under the lock.

The readers (`read_stamp`, `read_json`) check a folder before anything in it is unpickled or
trusted, so a damaged or foreign folder is a clear error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from . import __version__
from .argnames import command_line_active, option
from .errors import UserError

STAMP = "finegrain.json"
# Bump when the folder's layout or ir.pkl's contents change meaning: readers refuse other versions.
FORMAT_VERSION = 1
_SIGNALS = {signal.SIGINT, signal.SIGTERM}
# Failures to write that are the machine's state, not finegrain's: a user error, exit code 2.
_ENVIRONMENT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                       errno.EBUSY, errno.EXDEV}


class OutputFolderError(UserError):
    """The output folder cannot be written, or a folder given to read is not a usable output."""


# --- where compile may write ------------------------------------------------------------
def check_target(out: Path, force: bool, inputs: list[tuple[str, str]], kind: str = "compile") -> None:
    """Refuse an ``-o`` that cannot be written or must not be replaced; ``inputs`` are the
    files compile reads, as (what, path), which the output folder must not hold; ``kind``:
    what will be written ("compile" or "sweep"), which replaces only a folder of its kind."""
    shown = str(out)
    target = out.resolve()
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputFolderError(f"output folder {shown!r} is under {str(ancestor)!r}, which is a file, not a "
                                f"folder; choose another {option('output_dir')}")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise OutputFolderError(f"output folder {shown!r} is the current folder or holds it; compile replaces its "
                                f"output folder whole, so choose a new folder for {option('output_dir')}, e.g. "
                                f"{option('output_dir', 'out')}")
    for what, path in inputs:
        p = Path(path).resolve()
        if target == p:
            raise OutputFolderError(f"output folder {shown!r} is the {what} itself; choose a folder of its own for "
                                    f"{option('output_dir')}, e.g. {option('output_dir', 'out')}")
        if target in p.parents:
            raise OutputFolderError(f"output folder {shown!r} holds the {what} {str(path)!r}; compile replaces its "
                                    f"output folder whole, so choose a folder of its own for "
                                    f"{option('output_dir')}, e.g. {option('output_dir', str(Path(shown) / 'out'))}")
    longest = _longest_name(target.parent) - len(".lock.new-XXXXXXXX")
    if len(os.fsencode(target.name)) > longest:
        raise OutputFolderError(f"output folder name {target.name[:40]!r}... is {len(os.fsencode(target.name))} "
                                f"bytes long; this file system takes names of at most {longest} bytes here (with "
                                f"room for compile's temporary names); choose a shorter {option('output_dir')}")
    if out.is_symlink():
        raise OutputFolderError(f"output folder {shown!r} is a symbolic link; give the folder it points to, or "
                                f"another {option('output_dir')}")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output path {shown!r} exists and is not a folder; choose another "
                                f"{option('output_dir')}")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputFolderError(f"output folder {shown!r} is not empty; pass {option('force', True)} to replace "
                                    f"it, or choose another {option('output_dir')}")
        if not (out / STAMP).is_file():
            raise OutputFolderError(f"output folder {shown!r} is not empty and has no {STAMP} stamp, so it is not a "
                                    f"finegrain output folder (or one written before stamps); {option('force', True)} "
                                    f"replaces only finegrain output folders: choose another {option('output_dir')}, "
                                    f"or delete it yourself")
        held = _kind(out / STAMP)
        if held != kind:
            raise OutputFolderError(f"output folder {shown!r} holds a {KINDS[held]}; {option('force', True)} replaces "
                                    f"only a {KINDS[kind]}: choose another {option('output_dir')}, or delete it "
                                    f"yourself")


KINDS = {"compile": "compiled model", "sweep": "plan sweep"}


def _kind(stamp_path: Path) -> str:
    """What a stamped folder holds: "sweep" or "compile" (any stamp without a known kind)."""
    try:
        kind = json.loads(stamp_path.read_text()).get("kind", "compile")
    except (OSError, ValueError, AttributeError):
        return "compile"
    return kind if kind in KINDS else "compile"


def _longest_name(folder: Path) -> int:
    while not folder.exists():
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


# --- the stamp --------------------------------------------------------------------------
def stamp(ir_pickle: Path) -> dict:
    return {"finegrain_output": FORMAT_VERSION, "finegrain_version": __version__,
            "ir_sha256": hashlib.sha256(ir_pickle.read_bytes()).hexdigest()}


def read_stamp(out: Path) -> dict:
    """The folder's stamp, checked: ours, this format version, this finegrain, ir.pkl intact."""
    shown = str(out)
    again = (f"compile it again with 'finegrain compile MODEL --plan PLAN -o {shown} --force'" if command_line_active()
             else f"compile it again with compile_model(model, plan, output_dir={shown!r}, force=True)")
    if not out.is_dir():
        raise OutputFolderError(f"{shown!r} is not a folder; give the output folder of 'finegrain compile'")
    path = out / STAMP
    if not path.is_file():
        raise OutputFolderError(f"{shown!r} is not a finegrain output folder (it has no {STAMP} stamp); give the "
                                f"output folder of 'finegrain compile', or {again}")
    if _kind(path) == "sweep":
        raise OutputFolderError(f"{shown!r} is the output folder of 'finegrain plan sweep', not of a compile: each "
                                f"point's compiled model is in {str(out / 'points' / 'NAME' / 'build')!r}, and the "
                                f"sweep's table and plot in {str(out / 'sweep.md')!r} and {str(out / 'report.html')!r}")
    try:
        saved = json.loads(path.read_text())
        version = saved["finegrain_output"]
        digest = saved["ir_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputFolderError(f"{shown!r} has a damaged {STAMP} stamp; {again}") from None
    if version != FORMAT_VERSION:
        raise OutputFolderError(f"{shown!r} is a finegrain output folder of format {version!r} (finegrain "
                                f"{saved.get('finegrain_version')}); this finegrain {__version__} reads format "
                                f"{FORMAT_VERSION}: {again}")
    if saved.get("finegrain_version") != __version__:
        raise OutputFolderError(f"{shown!r} was compiled by finegrain {saved.get('finegrain_version')}, this is "
                                f"{__version__}: {again}")
    pkl = out / "ir.pkl"
    if not pkl.is_file() or hashlib.sha256(pkl.read_bytes()).hexdigest() != digest:
        raise OutputFolderError(f"{shown!r} has a missing or damaged ir.pkl (it does not match its {STAMP} "
                                f"stamp); {again}")
    return saved


def read_json(path: Path, what: str, required: bool = True):
    """A JSON file of an output folder, or a clear error naming it when damaged."""
    if not path.is_file():
        if required:
            raise OutputFolderError(f"{what} {str(path)!r} is missing; compile the folder again")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise OutputFolderError(f"{what} {str(path)!r} is damaged ({err}); compile the folder again") from None


# --- writing ----------------------------------------------------------------------------
@contextlib.contextmanager
def signals_blocked():
    """SIGINT and SIGTERM wait (they are delivered on exit) while the block runs.

    The signal mask holds them off this thread only.  A signal sent to the process can land on
    another thread that does not block it (HiGHS's and OpenBLAS's workers), and Python then runs
    its handler in the main thread all the same, inside the block.  So in the main thread the
    Python handlers are also swapped, for the block, for one that only notes the signal, and a
    noted signal is raised again once the block is over and the handlers are back.
    """
    pending: list[int] = []
    swapped = {}
    if threading.current_thread() is threading.main_thread():
        for number in _SIGNALS:
            if signal.getsignal(number) is not None:  # None: a handler set outside Python, left alone
                swapped[number] = signal.signal(number, lambda signum, frame: pending.append(signum))
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        for number, handler in swapped.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(pending):
            signal.raise_signal(number)


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def locked(out: Path):
    """Hold the output folder's lock: create its parents (removed again on failure), take
    the lock file beside it, and clean up what a killed compile left."""
    target = out.resolve()
    created = _make_parents(out, target.parent)
    ok = False
    try:
        lock = _lock_path(target)
        fd = _acquire(out, lock)
        try:
            _recover(target)
            yield
            ok = True
        finally:
            with signals_blocked():
                with contextlib.suppress(OSError):
                    lock.unlink()
                os.close(fd)
    finally:
        if not ok:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()


@contextlib.contextmanager
def claimed(out: Path, force: bool, inputs: list[tuple[str, str]], kind: str = "compile"):
    """Hold ``out`` for a compile (or a sweep): `check_target` before the lock (fail fast,
    nothing made) and again under it (another compile may have written the folder meanwhile)."""
    check_target(out, force, inputs, kind)
    with locked(out):
        check_target(out, force, inputs, kind)
        yield


def _make_parents(out: Path, parent: Path) -> list[Path]:
    missing = []
    p = parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except OSError as err:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise OutputFolderError(f"cannot create the folder {str(folder)!r} for output folder {str(out)!r}: "
                                f"{err.strerror}; choose another {option('output_dir')}") from None
    return created


def _acquire(out: Path, lock: Path) -> int:
    """Lock ``lock`` without waiting.  The file is unlinked by its holder on exit, so after
    taking it, check it is still the file at that path (else another compile holds a new one)."""
    for _ in range(10):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OutputFolderError(f"cannot write beside output folder {str(out)!r} (lock file {str(lock)!r}: "
                                    f"{err.strerror}); choose another {option('output_dir')}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputFolderError(f"another finegrain command (compile, csim, sim or report) is using output "
                                        f"folder {str(out)!r}: it holds the lock {str(lock)!r}; wait for it to "
                                        f"finish, or give another folder") from None
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise OutputFolderError(f"could not take the lock {str(lock)!r} of output folder {str(out)!r}; try again")


def _temporaries(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def _recover(target: Path) -> None:
    """Under the lock: whatever temporaries exist are a killed compile's.  If it died inside
    the swap (old aside, new not in), put the old folder back; then delete the rest."""
    old = [p for p in _temporaries(target, "old") if (p / STAMP).is_file()]
    if not target.exists() and not target.is_symlink() and len(old) == 1:
        os.replace(old[0], target)
    for p in _temporaries(target, "old") + _temporaries(target, "new"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)


def write_folder(out: Path, fill) -> None:
    """Call ``fill(folder)`` on a new temporary sibling of ``out``, then swap it in (the
    caller holds `locked(out)`)."""
    target = out.resolve()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    except OSError as err:
        raise OutputFolderError(f"cannot write output folder {str(out)!r}: {err.strerror} in "
                                f"{str(target.parent)!r}; choose another {option('output_dir')}") from None
    try:
        try:
            fill(tmp)
            with signals_blocked():
                _swap(tmp, target)
        except OSError as err:
            if err.errno not in _ENVIRONMENT_ERRORS:
                raise
            raise OutputFolderError(f"cannot write output folder {str(out)!r}: {err.strerror} ({str(err.filename)!r}); "
                                    f"make room, or choose another {option('output_dir')}") from None
    except BaseException:
        with signals_blocked():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(new: Path, target: Path) -> None:
    """``new`` becomes ``target``; a previous ``target`` is renamed aside first and deleted
    last, so there is never a moment with neither.  Any failure undoes the renames."""
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        try:
            os.replace(target, aside)  # onto the empty folder just made: atomic on POSIX
        except OSError:
            aside.rmdir()
            raise
    try:
        os.replace(new, target)
    except OSError:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def write_whole(final: Path, write) -> None:
    """Write the file ``final`` by ``write(binary file)`` through a temporary file beside it, so
    an interrupted or failed write leaves the previous file (or none), never a partial one."""
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
