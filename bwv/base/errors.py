"""Error types that carry a human diagnosis.

Every error the product raises on purpose is a :class:`BwvError`; its message is one line that
says what is wrong and, where there is one, what to do about it. The CLI prints that line and
exits non-zero; anything else is a bug and is reported as one.
"""


class BwvError(Exception):
    """An expected failure with a one-line diagnosis for the person at the keyboard."""

    exit_code = 1

    def __init__(self, diagnosis: str) -> None:
        super().__init__(diagnosis)
        self.diagnosis = diagnosis


class ConfigError(BwvError):
    """Settings, files or keys are missing or unusable."""


class SchemaError(BwvError):
    """The database is not at the schema revision this bwv expects."""


class KeyError_(BwvError):
    """A signing or verifier key is missing, malformed or unusable."""


class ProofError(BwvError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 §2.1.3-2.1.4)."""


class NoteError(BwvError):
    """A signed note or checkpoint is malformed or its signature does not verify."""


class TamperError(BwvError):
    """The ledger's stored state disagrees with what was signed or recorded.

    ``index`` is the first leaf index implicated, when one can be named.
    """

    exit_code = 2

    def __init__(self, diagnosis: str, index: int | None = None) -> None:
        super().__init__(diagnosis)
        self.index = index


class BundleError(BwvError):
    """An audit bundle is malformed or does not verify."""

    exit_code = 2


class WitnessRefusal(BwvError):
    """The witness will not accept a checkpoint: it is not an extension of what it saw before."""

    exit_code = 2


class DetectorError(BwvError):
    """A face or text detector cannot run: model file missing or corrupt, inference failed, or
    a frame of the wrong size. Redaction fails closed on it rather than export unblurred."""
