"""The ``bwv`` command: the root of the command line, which mounts the command groups of
:mod:`bwv.cli` (each parses, calls the library, prints).

Errors the product expects (:class:`bwv.base.errors.BwvError`) become one line on stderr and a
non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import typer

from bwv.cli import (
    agent,
    audit,
    clips,
    common,
    demo,
    docks,
    exports,
    holds,
    redact,
    retention,
    serve,
    session,
    setup,
    users,
)

app = typer.Typer(
    help="bwv: evidence system for body-worn video (ingest, redaction, custody ledger).",
    callback=common.root_options,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=common.PlainGroup,
)

# Setting up and running the service (on the server host).
app.command("init")(setup.init)
app.add_typer(setup.keys, name="keys")
app.command("serve")(serve.serve)
app.add_typer(docks.docks, name="docks")
app.add_typer(docks.devices, name="devices")
app.add_typer(users.users, name="users")
app.add_typer(retention.categories, name="categories")
app.add_typer(retention.retention, name="retention")
# The dock agent (on a docking-station PC).
app.add_typer(agent.dock, name="dock")
# Officers and auditors, through the service.
app.command("login")(session.login)
app.command("logout")(session.logout)
app.command("whoami")(session.whoami)
app.add_typer(clips.clips, name="clips")
app.add_typer(holds.holds, name="hold")
app.add_typer(redact.redact, name="redact")
app.command("export")(exports.export)
app.add_typer(exports.exports, name="exports")
app.add_typer(audit.audit, name="audit")
# The main job end to end.
app.command("demo")(demo.demo)


def main() -> None:
    common.run(app)


if __name__ == "__main__":
    main()
