"""Error types that carry a human diagnosis and the HTTP status they are answered with.

Every error the product raises on purpose is a :class:`BwvError`; its message is one line that
says what is wrong and, where there is one, what to do about it. The CLI prints that line and
exits non-zero; the HTTP API answers it with the error's ``status`` (RFC 9110 §15) as
``{"detail": line}`` and records it in the custody ledger, in one handler (``bwv.api.errors``).
Anything else is a bug and is reported as one.

Each kind below declares its status once; the errors of the domain derive from the kind they
are (a clip retention deleted is :class:`Gone`, a store that cannot be reached
:class:`Unavailable`).
"""

from collections.abc import Mapping
from types import MappingProxyType

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class BwvError(Exception):
    """An expected failure with a one-line diagnosis for the person at the keyboard.

    ``status`` is the HTTP status the API answers it with: 4xx for what the caller can change,
    5xx for what is the server's fault. ``shown`` is the diagnosis as others may see it (an
    HTTP answer, a leaf: permanent and read by officers and auditors), without server paths.
    ``recorded`` is true once a leaf tells of it, or when none is to (the API's handler then
    records none). ``target`` is what it is about (an evidence id), when whoever raised it knows.
    """

    exit_code = 1
    status = 400
    headers: Mapping[str, str] = _NO_HEADERS
    recorded = False
    target: str | None = None
    _shown: str | None = None

    def __init__(self, diagnosis: str) -> None:
        super().__init__(diagnosis)
        self.diagnosis = diagnosis

    @property
    def shown(self) -> str:
        return self.diagnosis if self._shown is None else self._shown

    @shown.setter
    def shown(self, value: str) -> None:
        self._shown = value

    @property
    def why(self) -> str:
        """What the leaf recording this refusal or failure says in ``details.why``."""
        return self.shown

    @property
    def refusal(self) -> bool:
        """Whether it is recorded as a refusal of the request (``access.denied``) rather than as
        its failure: a 4xx is what the caller asked, a 5xx the server's fault."""
        return self.status < 500


# --- what the caller asked cannot be done (4xx) ----------------------------------------------


class Refused(BwvError):
    """The request cannot be carried out as asked (400)."""

    status = 400


class Forbidden(Refused):
    """The caller's role, or whose clip it is, does not allow it (403)."""

    status = 403


class NotFound(Refused):
    """No such clip, disclosure copy, upload or receipt (404)."""

    status = 404


class Conflict(Refused):
    """The thing asked about is not in the state the request needs (409)."""

    status = 409


class Gone(Refused):
    """The footage was deleted under retention: only its custody record remains (410)."""

    status = 410


class TooLarge(Refused):
    """The request is larger than this service takes (413)."""

    status = 413


class Invalid(Refused):
    """A value that is well-formed but cannot be used (422)."""

    status = 422


# --- the server's fault (5xx) ------------------------------------------------------------------


class Failed(BwvError):
    """Something broke on the server's side; nothing was done (500)."""

    status = 500


class Unavailable(Failed):
    """A part the service needs (the store of record, the ledger) cannot be reached just now;
    the same request may succeed later (503, with ``Retry-After`` seconds)."""

    status = 503

    def __init__(self, diagnosis: str, *, retry_after: int | None = None) -> None:
        super().__init__(diagnosis)
        if retry_after is not None:
            self.headers = {"Retry-After": str(retry_after)}


# --- settings, keys and the ledger ---------------------------------------------------------------


class ConfigError(BwvError):
    """Settings, files or keys are missing or unusable."""

    status = 500


class SchemaError(BwvError):
    """The database is not at the schema revision this bwv expects."""

    status = 500


class KeyError_(BwvError):
    """A signing or verifier key is missing, malformed or unusable."""

    status = 500


class ProofError(BwvError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 §2.1.3-2.1.4)."""

    status = 500


class NoteError(BwvError):
    """A signed note or checkpoint is malformed or its signature does not verify."""

    status = 500


class TamperError(BwvError):
    """The ledger's stored state disagrees with what was signed or recorded.

    ``index`` is the first leaf index implicated, when one can be named.
    """

    exit_code = 2
    status = 500

    def __init__(self, diagnosis: str, index: int | None = None) -> None:
        super().__init__(diagnosis)
        self.index = index


class BundleError(BwvError):
    """An audit bundle is malformed or does not verify."""

    exit_code = 2
    status = 422


class WitnessRefusal(BwvError):
    """The witness will not accept a checkpoint: it is not an extension of what it saw before."""

    exit_code = 2
    status = 409


class DetectorError(BwvError):
    """A face or text detector cannot run: model file missing or corrupt, inference failed, or
    a frame of the wrong size. Redaction fails closed on it rather than export unblurred."""

    status = 500
