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
