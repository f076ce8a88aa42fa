"""The one exception tree of the project.

Every error the `ivr` command can meet derives from `IvrError`; its `exit_code` is the
process exit status the CLI maps it to, in one place (`ivr.cli.main`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ivr.yamldoc.diagnostics import Diagnostic


class IvrError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1


class UsageError(IvrError):
    """The command was called wrongly (a missing file, a bad option value)."""

    exit_code = 2


class DiagnosticsError(IvrError):
    """Input was checked and found wrong; carries every finding, best first."""

    def __init__(self, diagnostics: Sequence["Diagnostic"]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class FlowError(DiagnosticsError):
    """A flow file (or a journey test file) does not compile."""


class ConfigError(DiagnosticsError):
    """config.yaml is wrong."""


class MissingSecret(ConfigError):
    """config.yaml names a ${VARIABLE} that the environment does not hold."""

    def __init__(self, name: str):
        super().__init__([])
        self.name = name

    def __str__(self) -> str:
        return f"environment variable {self.name} is not set (config.yaml refers to ${{{self.name}}})"


class PromptError(IvrError):
    """A prompt cannot be rendered or converted; the previous good file stays."""


class JourneyFailure(IvrError):
    """At least one journey test case failed."""


class CallError(IvrError):
    """Something ended a call early."""


class CallerHangup(CallError):
    """The caller hung up; the flow stops and the call is recorded as abandoned there."""


class ChannelError(CallError):
    """The channel (Asterisk, console, script) failed; the caller goes to the fallback queue."""


class EngineError(CallError):
    """The engine met a state it cannot run (a runaway call); the caller goes to the fallback queue."""


class FlowNotLoaded(EngineError):
    """A call asks for a flow that is not loaded (a FastAGI script path that names none);
    the caller goes to the fallback queue."""


class AsteriskError(IvrError):
    """Asterisk configuration cannot be generated from config.yaml (a value that would break
    or inject into a config file, a missing secret), or the local test-bed Asterisk failed."""


class AmiError(IvrError):
    """The Asterisk Manager Interface refused, failed or was unreachable; or a value was
    refused before it could reach it (a line break in a header, a number that is no number)."""


class AmiLoginError(AmiError):
    """Asterisk refused the AMI user name or secret (the secret is never in the message)."""


class AmiRefused(AmiError):
    """Asterisk refused an action (an Originate answered with Error), or a value was refused
    before it could reach it (a number that is no number, a line break in a header): nothing
    was carried out, and the same request would be refused again."""


class AmiConnectionLost(AmiError):
    """The AMI connection is down, or dropped while an action waited for its answer.
    The action is not sent again: it may or may not have been carried out."""


class StoreError(IvrError):
    """The database cannot be opened or migrated (a bad URL, an unreachable server)."""


class WebError(IvrError):
    """The QA web app cannot start (a weak session key, an address in use) or a user
    account cannot be made (a taken name, a short password, an unknown role)."""


class RecordingError(IvrError):
    """The recordings folder cannot be indexed or purged (it is no folder)."""


class DemoError(IvrError):
    """`ivr demo` cannot fill the installation: flows that are not the example line's, or
    call records the database would not take."""


class ListenError(IvrError):
    """A server cannot listen on the address it is given (taken, or not this host's)."""
