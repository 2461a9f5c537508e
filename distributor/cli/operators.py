"""`distributor operators ...`: who may sign in to the console at /admin, and as what."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from distributor.cli.core import app, open_store

operators_app = typer.Typer(help="Console accounts: add, list, remove, set-password, set-role.", no_args_is_help=True)
app.add_typer(operators_app, name="operators")


def _password(password_file: Optional[Path]) -> str:
    """From --password-file (first line), else asked twice without echo."""
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            typer.echo(f"cannot read --password-file {password_file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        if not lines or not lines[0]:
            typer.echo(f"--password-file {password_file}: the first line is empty", err=True)
            raise typer.Exit(2)
        return lines[0]
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(action, *args):  # noqa: ANN001, ANN202
    from distributor.operators import OperatorError

    try:
        return action(*args)
    except OperatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@operators_app.command("add")
def add(
    name: str = typer.Argument(..., help="Sign-in name: lower-case letters, digits, . _ -"),
    role: str = typer.Option(..., "--role", help="viewer (reads), editor (schedules, previews, tests, pins) or admin (everything)."),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="Read the password from this file's first line instead of asking."),
) -> None:
    """Create a console account."""
    from distributor import operators

    store = open_store()
    operator = _run(operators.add, store, name, role, _password(password_file))
    typer.echo(f"added operator {operator.name} ({operator.role})")


@operators_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every console account, with its role and last sign-in."""
    from distributor import operators

    found = operators.list_all(open_store())
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": o.name,
                        "role": o.role,
                        "created_at": o.created_at.isoformat(),
                        "last_login_at": o.last_login_at.isoformat() if o.last_login_at else None,
                    }
                    for o in found
                ],
                indent=2,
            )
        )
        return
    if not found:
        typer.echo("no operators yet: distributor operators add NAME --role admin")
        return
    width = max(len(o.name) for o in found)
    for o in found:
        last = o.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if o.last_login_at else "never signed in"
        typer.echo(f"{o.name:<{width}}  {o.role:<6}  {last}")


@operators_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Delete a console account and end its sessions."""
    from distributor import operators

    _run(operators.remove, open_store(), name)
    typer.echo(f"removed operator {name}")


@operators_app.command("set-password")
def set_password(
    name: str = typer.Argument(...),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="Read the password from this file's first line."),
) -> None:
    """Replace an operator's password (their open sessions end)."""
    from distributor import operators

    _run(operators.set_password, open_store(), name, _password(password_file))
    typer.echo(f"password changed for {name}; their sessions were ended")


@operators_app.command("set-role")
def set_role(name: str = typer.Argument(...), role: str = typer.Argument(..., help="viewer, editor or admin")) -> None:
    """Change an operator's role."""
    from distributor import operators

    operator = _run(operators.set_role, open_store(), name, role)
    typer.echo(f"{operator.name} is now {operator.role}")
