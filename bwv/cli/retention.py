"""Categories and retention on the server host: ``bwv categories`` (how long each kind of clip
is kept) and ``bwv retention run`` (delete what is past its date and not held)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from bwv.base.errors import BwvError, ConfigError
from bwv.cli.common import group, session
from bwv.cli.output import counted, err, on_bar, out, progress
from bwv.services import admin
from bwv.services.retention import RetentionReport, run_retention

categories = group("Clip categories and how long each is kept.")
retention = group("Retention: delete clips whose period has ended.")


@categories.command("list")
def categories_list(ctx: typer.Context) -> None:
    """Each category and its retention period, counted from when a clip was recorded."""
    context = session(ctx).context()
    table = Table("category", "kept (days)", "about")
    for name, days in admin.category_periods(context).items():
        table.add_row(name, str(days), f"{days / 365.25:.1f} years" if days >= 365 else "")
    out.print(table)
    context.close()


@categories.command("set")
def categories_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    days: Annotated[
        int, typer.Option("--days", metavar="DAYS", help="How long clips in it are kept.")
    ],
) -> None:
    """Add category NAME, or change how long its clips are kept (their dates are recomputed)."""
    context = session(ctx).context()
    changed = admin.set_category(context, name, days)
    dates = "1 clip's retention date" if changed == 1 else f"{changed} clips' retention dates"
    out.print(f"category {name}: kept {days} days; {dates} changed")
    context.close()


def as_of_date(as_of: str | None, dry_run: bool) -> datetime | None:
    if as_of is None:
        return None
    if not dry_run:
        raise ConfigError("--as-of is only for --dry-run: a real run deletes as of now")
    try:
        when = datetime.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def show_retention(report: RetentionReport, dry_run: bool) -> None:
    listed = [
        ("would delete" if dry_run else "due", report.due),
        ("held past its date", report.held_past_due),
    ]
    for title, clips in listed:
        table = Table("evidence id", "category", "case", "recorded", "retain until", "size")
        for c in clips:
            table.add_row(
                c.evidence_id,
                c.category,
                c.case_ref or "",
                f"{c.recorded_at:%Y-%m-%d %H:%M}" if c.recorded_at else "unknown",
                f"{c.retain_until:%Y-%m-%d}" if c.retain_until else "",
                str(c.size),
            )
        out.print(f"{title}: {len(clips)}")
        if clips:
            out.print(table)
    if not dry_run:
        out.print(f"deleted: {len(report.deleted)} (one clip.deleted leaf each)")
    for failure in report.failures:
        err.print(f"not deleted: {failure.evidence_id}: {failure.diagnosis}", markup=False)
    if report.failures:
        raise BwvError(f"{counted(len(report.failures), 'clip')} could not be deleted (see above)")


@retention.command("run")
def retention_run(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; change nothing.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="DATE", help="With --dry-run: as if it were this date (YYYY-MM-DD)."
        ),
    ] = None,
) -> None:
    """Delete every clip past its retention date with no hold, leaving a tombstone leaf each."""
    when = as_of_date(as_of, dry_run)
    context = session(ctx).context()
    with progress() as bar:
        report = run_retention(
            context,
            admin.evidence_store(context),
            operator=context.settings.actor,
            dry_run=dry_run,
            now=when,
            progress=on_bar(bar, "retention"),
        )
    context.close()
    show_retention(report, dry_run)
