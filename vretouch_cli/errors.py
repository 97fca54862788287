"""One exception hierarchy. The CLI turns any VRetouchError into one line and a non-zero exit."""


class VRetouchError(Exception):
    """Base class of every error the tool reports to a user."""

    exit_code = 1


class InputError(VRetouchError):
    """The input is missing, unreadable, corrupt or has no usable video stream."""

    exit_code = 2


class OutputError(VRetouchError):
    """The output cannot be written (folder missing or read-only, exists, equals the input)."""

    exit_code = 3


class UsageError(VRetouchError):
    """An option has a value outside its range or an unknown name."""

    exit_code = 2


class DeviceError(VRetouchError):
    """The requested compute device is not available."""

    exit_code = 4


class WeightsError(VRetouchError):
    """Weights are missing, corrupt, or do not match their config."""

    exit_code = 5


class NoFaceError(VRetouchError):
    """No face was found where one is required."""

    exit_code = 6


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop, clean up, exit with 128 + the signal number.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception`` blocks do not
    swallow it; every cleanup path here uses ``except BaseException`` or ``finally``.
    """

    def __init__(self, signum: int = 2) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
