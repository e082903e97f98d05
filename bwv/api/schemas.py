"""What the API answers with: the public shape of clips, disclosure copies and the caller."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator

from bwv.base.clock import as_utc
from bwv.redact.plan import Options
from bwv.services.clips import Clip, Export

# RFC 3339 with an offset, whatever the database hands back (SQLite's are naive UTC).
Utc = Annotated[datetime, AfterValidator(as_utc)]


class Problem(BaseModel):
    detail: str = Field(description="What is wrong, in one line.")


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (400, 401, 403, 404, 409, 410, 503)
}
"""The refusals and failures a route may answer (``bwv.api.errors``), for the API's schema."""


class Unprocessable(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="What cannot be used, in one line; or FastAPI's list of invalid fields."
    )


UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": Unprocessable, "description": "A value that is well-formed but unusable."}
}
"""For routes that refuse a value the schema cannot express (a case reference with a hidden
character, a time with no UTC equivalent) in one line, as well as FastAPI's own 422 list."""


class Me(BaseModel):
    name: str
    role: str
    token_expires_at: Utc | None


class CategoryOut(BaseModel):
    name: str
    retention_days: int


class ExportOut(BaseModel):
    export_id: str
    evidence_id: str
    sha256: str
    size: int
    parent_sha256: str
    plan_sha256: str
    classes: str
    officer: str
    reason: str
    created_at: Utc

    @classmethod
    def from_row(cls, row: Export) -> ExportOut:
        return cls.model_validate(row, from_attributes=True)


class ClipOut(BaseModel):
    evidence_id: str
    sha256: str
    size: int
    status: str
    officer: str | None
    camera: str | None
    dock: str | None
    bay: str | None
    original_name: str | None
    recorded_at: Utc | None
    ingested_at: Utc
    container: str | None
    video_codec: str | None
    audio_codec: str | None
    duration_s: float | None
    width: int | None
    height: int | None
    frame_rate: float | None
    category: str
    case: str | None
    retain_until: Utc | None
    held: bool
    deleted_at: Utc | None
    exports: int

    @classmethod
    def from_clip(cls, clip: Clip, exports: int) -> ClipOut:
        """From the records' clip and its count of disclosure copies."""
        fields = clip.model_dump()
        return cls(
            **{k: v for k, v in fields.items() if k in cls.model_fields},
            camera=fields["camera_serial"],
            case=fields["case_ref"],
            exports=exports,
        )


class ClipDetail(ClipOut):
    export_list: list[ExportOut]


class ClipPage(BaseModel):
    items: list[ClipOut]
    total: int
    limit: int
    offset: int


class CategoryChange(BaseModel):
    category: str = Field(min_length=1, max_length=100)
    case: str | None = Field(default=None, max_length=200)


# Seconds into the clip: finite, not negative, under a day and a half of footage.
Second = Annotated[float, Field(ge=0, le=131072, allow_inf_nan=False)]


class PlanRequest(BaseModel):
    options: Options | None = None
    mute: list[tuple[Second, Second]] = Field(
        default_factory=list, max_length=1000, description="Audio spans to silence: [start, end]."
    )

    @field_validator("mute")
    @classmethod
    def _spans_run_forward(cls, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for start, end in spans:
            if end <= start:
                raise ValueError(f"mute span [{start}, {end}] must end after it starts")
        return spans


class ExportRequest(PlanRequest):
    plan: str | None = Field(
        default=None,
        description=(
            "A reviewed plan: the exact text of the plan file (as POST .../plan returned it, "
            "edited), at most max_plan_bytes (8 MiB unless configured; else 413). With no "
            "mute or options it is rendered exactly and its SHA-256 is what the export.created "
            "leaf records; mute spans are added to it and the render options set (mode, shape, "
            "padding, audio) applied, and the resulting plan's SHA-256 is recorded."
        ),
    )


class PlanOut(BaseModel):
    plan: str = Field(description="The plan file's exact text (JSON); plan_sha256 is its hash.")
    plan_sha256: str
    sheet_png: str = Field(description="The contact sheet, PNG, base64.")


class ExportPage(BaseModel):
    items: list[ExportOut]
    total: int
    limit: int
    offset: int


class LeavesOut(BaseModel):
    tree_size: int
    start: int
    leaves: list[str] = Field(description="Leaf bytes (RFC 8785 JSON), base64.")


class CheckOut(BaseModel):
    ok: bool
    detail: str = Field(description="What the check found, in one line (no paths, no secrets).")


class ReadinessOut(BaseModel):
    status: str = Field(description='"ready", or "not ready" (then the answer is 503).')
    checks: dict[str, CheckOut] = Field(description="Each check by name: database, store, uploads.")
    failed: list[str] = Field(description="The names of the checks that failed (none if ready).")
