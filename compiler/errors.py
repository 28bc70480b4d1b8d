"""User-facing errors.  Anything derived from UserError is the user's input being wrong:
the CLI prints its message as one paragraph and exits with code 2, never a traceback."""


class UserError(Exception):
    """Bad input from the user: the message names the node/tensor and says how to fix it."""


class FrontendError(UserError):
    """The ONNX file cannot be read or uses something finegrain does not support."""


class PlanError(UserError):
    """The bit plan is malformed or does not fit the model."""


class UsageError(UserError):
    """A bad command line: an option's value, or a file or folder a command cannot use."""


def caused_by_interrupt(err: BaseException) -> bool:
    """Whether ``err`` is, or was raised from or while handling, a KeyboardInterrupt.  An
    interrupt that arrives while a compiled module initialises comes back as another
    exception: a pybind11 module (highspy, imported by the RTL builder on first use) raises
    ``ImportError("initialization failed")`` from it."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def reraise_interrupt(err: BaseException) -> None:
    """Raise KeyboardInterrupt if ``err`` was caused by one (`caused_by_interrupt`): a
    catch-all that turns a failure of finegrain itself into a clear message must not turn
    Ctrl-C (or SIGTERM, which the CLI raises as KeyboardInterrupt) into one."""
    if caused_by_interrupt(err):
        raise KeyboardInterrupt from err
