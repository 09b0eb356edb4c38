"""Errors a user can cause. The CLI turns these into one red line and exit code 2."""


class UsageError(ValueError):
    """A bad value given by the user (unknown name, out-of-range number, missing data)."""


class UnknownNameError(UsageError, KeyError):
    """A name that is not registered; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


def check_choice(kind: str, value: str, valid) -> str:
    """Return ``value`` if it is one of ``valid``, else raise UnknownNameError."""
    if value not in valid:
        raise UnknownNameError(kind, value, valid)
    return value
