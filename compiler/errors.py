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
