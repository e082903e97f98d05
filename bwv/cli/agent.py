"""``bwv dock``: the dock agent on a docking-station PC (enrol once, then run; status shows its
queue). The agent itself is the ``docks`` package; this is its command line."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bwv.base.errors import ConfigError
from bwv.cli.common import group
from bwv.cli.output import counted, out
from bwv.keys import VerifierKey
from docks import DockAgent, DockConfig, status, write_enrollment
from docks.config import CONFIG_NAME
from docks.watcher import CAMERA_FILE, CLIP_EXTENSIONS, MARKER_SUFFIX

# Exit codes of `bwv dock run` besides 0 (everything taken was receipted and wiped) and the one
# line of an error (1 for configuration, see bwv.base.errors).
KEPT_ON_CAMERA = 3

BAY_LAYOUT = f"""\b
A bay folder is where one docked camera's storage appears:
  BAY/{CAMERA_FILE:20} first line: the camera's serial (else the folder's name)
  {"BAY/*.mp4":24} clips, in the bay or up to two levels below it
  {"BAY/DCIM/100MEDIA/*.mp4":24} ({", ".join(sorted(CLIP_EXTENSIONS))})
  {"BAY/CLIP.mp4" + MARKER_SUFFIX:24} the camera's marker that CLIP.mp4 is finished;
  {"":24} without it, once its size is stable for --settle seconds
Other files are reported once and never touched.
"""

EXIT_CODES = f"""\b
Exit codes:
  0   every finished clip was receipted and wiped (or is still pending)
  1   an error, in one line on stderr (not enrolled, no bays, a bay folder missing)
  {KEPT_ON_CAMERA}   some clips were rejected or failed: they stay on the camera (listed)
  70  an internal error (run with --debug for the traceback)
"""

dock = group(
    "The dock agent on a docking-station PC: `bwv dock enroll` once, then `bwv dock run`.\n\n"
    + BAY_LAYOUT
)

DEFAULT_DOCK_STATE = Path.home() / ".local" / "share" / "bwv-dock"
DockState = Annotated[
    Path,
    typer.Option(
        "--state",
        envvar="BWV_DOCK_STATE",
        metavar="DIR",
        help="The dock's state directory (config, queue, receipts).",
    ),
]


@dock.command("enroll")
def dock_enroll(
    url: Annotated[
        str, typer.Option(metavar="URL", help="The ingest service, e.g. https://evidence:8443")
    ],
    name: Annotated[
        str, typer.Option(metavar="NAME", help="This dock's name, as enrolled on the service.")
    ],
    token: Annotated[
        str,
        typer.Option(
            metavar="TOKEN", help="The token `bwv docks enroll NAME` printed on the server host."
        ),
    ],
    service_key: Annotated[
        list[str],
        typer.Option(metavar="KEY", help="The service's verifier key to pin (repeatable)."),
    ],
    ca_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="CA that signed the service's TLS certificate (only it is trusted).",
        ),
    ] = None,
    state: DockState = DEFAULT_DOCK_STATE,
) -> None:
    """Store this dock's enrolment: service URL, token, pinned service key and CA."""
    for key in service_key:
        VerifierKey.parse(key)
    config = write_enrollment(state, url, name, token, service_key, ca_file)
    out.print(f"dock {config.dock_name} enrolled with {config.service_url}; state in {state}")


@dock.command("run", epilog=BAY_LAYOUT + "\n" + EXIT_CODES)
def dock_run(
    bay: Annotated[
        list[Path] | None,
        typer.Option(metavar="DIR", help="A bay folder (one per docked camera); repeatable."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Take what is finished now, then stop.")
    ] = False,
    parallel: Annotated[int | None, typer.Option(metavar="N", help="Uploads at once.")] = None,
    max_rate: Annotated[
        float | None, typer.Option(metavar="MB/S", help="Upload cap, MB/s.")
    ] = None,
    settle: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS", help="Seconds a clip's size must be stable (without a .done marker)."
        ),
    ] = None,
    poll: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Seconds between bay scans.")
    ] = None,
    chunk_size: Annotated[
        float | None,
        typer.Option(
            metavar="MIB", help="MiB per PATCH: an interrupted chunk is sent again whole."
        ),
    ] = None,
    state: DockState = DEFAULT_DOCK_STATE,
) -> None:
    """Upload finished clips from the bays; wipe each only after its signed receipt verifies."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    if not (state / CONFIG_NAME).exists() and not state.is_file():
        raise ConfigError(
            f"this dock is not enrolled (no {state / CONFIG_NAME}): run `bwv dock enroll --url URL "
            "--name NAME --token TOKEN --service-key KEY` with what `bwv docks enroll NAME` "
            "printed on the server host"
        )
    config = DockConfig.load(state)
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "parallel": parallel,
            "max_rate_mb_s": max_rate,
            "settle_seconds": settle,
            "poll_interval": poll,
            "chunk_size": int(chunk_size * 1024 * 1024) if chunk_size else None,
        }.items()
        if v is not None
    }
    if bay:
        for folder in bay:
            if not folder.is_dir():
                raise ConfigError(f"bay folder {folder} does not exist")
        changes["bays"] = list(bay)
    config = dataclasses.replace(config, **changes)
    if not config.bays:
        raise ConfigError("no bay folders: give --bay DIR (one per docked camera)")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with DockAgent(config) as agent:
        report = agent.run(stop_event=stop, once=once)
    out.print(
        f"wiped {len(report.wiped)} (receipted), rejected {len(report.rejected)}, "
        f"failed {len(report.failed)}, pending {len(report.pending)}, "
        f"{counted(len(report.non_clips), 'non-clip file')}"
    )
    for clip in report.rejected + report.failed:
        out.print(f"  kept on camera: {clip.path}: {clip.last_error}", markup=False)
    if report.rejected or report.failed:
        raise typer.Exit(KEPT_ON_CAMERA)


@dock.command("status")
def dock_status(
    state: DockState = DEFAULT_DOCK_STATE,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """The dock's queue: every clip, its state and upload progress."""
    if not (state / "queue.sqlite3").exists() and not state.exists():
        raise ConfigError(f"no dock state at {state}: run `bwv dock enroll` first")
    rows = status(state)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table("id", "bay", "file", "state", "progress", "tries", "evidence id", "last error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["bay"]),
            str(row["file"]),
            row["state"],
            f"{row['progress']:.0f}%",
            str(row["attempts"]),
            row.get("evidence_id") or "",
            (row.get("last_error") or "")[:60],
        )
    out.print(table)
