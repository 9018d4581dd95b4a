"""One error root and the documented exit codes.

Every error raised for bad input is a ``KconformError``; the CLI prints its
``one_line()`` on stderr and exits with ``exit_code``.  A traceback means a
bug in kconform, never bad input.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``kconform`` (documented in the README)."""

    PASS = 0          # every patch PASS (WARN allowed)
    FAIL = 1          # at least one FAIL
    ERROR = 2         # bad input or usage
    MISS = 3          # no FAIL, but at least one MISS (something unmodelled)
    INTERRUPTED = 4   # stopped by a signal or an internal error; no report replaced
    SKIP = 5          # nothing to check: no patch touches a file kconform reads


# What each code means, in the words of the README's table and of --help.
EXIT_CODE_MEANINGS = {
    ExitCode.PASS: "every patch PASS (WARN allowed), or PASS and SKIP",
    ExitCode.FAIL: "at least one FAIL",
    ExitCode.ERROR: "bad input or usage (ERROR): one line on stderr, never a traceback",
    ExitCode.MISS: "no FAIL, but at least one MISS",
    ExitCode.INTERRUPTED: "interrupted (SIGINT/SIGTERM) or an internal error: no report was "
                          "written or replaced",
    ExitCode.SKIP: "SKIP: no patch touches a file kconform reads (nothing to check)",
}


class KconformError(Exception):
    """Root of every error kconform raises on purpose."""

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, *, file: str | None = None,
                 mail: str | None = None, hunk: str | None = None,
                 line: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.mail = mail
        self.hunk = hunk
        self.line = line
        self.hint = hint

    def one_line(self) -> str:
        """``file:line: mail <id>: hunk <h>: message (hint)`` on one line."""
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.mail:
            where.append(f"mail {self.mail}")
        if self.hunk:
            where.append(f"hunk {self.hunk}")
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        text = " ".join(text.split())  # one line, whatever the input held
        return ": ".join(where + [text])

    def as_dict(self) -> dict:
        return {"message": self.message, "file": self.file, "line": self.line,
                "mail": self.mail, "hunk": self.hunk}

    def __str__(self) -> str:
        return self.one_line()


class PatchError(KconformError):
    """The input is not a patch we can read (names file, mail and hunk)."""


class LimitError(PatchError):
    """The input exceeds a documented resource limit."""


class UsageError(KconformError):
    """The command line is wrong."""


class ModelError(KconformError):
    """A model could not run (a bug in kconform or an unsupported input)."""

    exit_code = ExitCode.INTERRUPTED
