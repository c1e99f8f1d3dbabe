"""``mmdx users``: manage the accounts of a review store from the command line.

This is how the first accounts come to exist: whoever can reach the store's database (the SQLite file or
the PostgreSQL URL with its password) acts as an operator, recorded in the audit trail as
``operator:<login name>``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from mmdx.errors import MmdxError
from mmdx.store import MIN_PASSWORD_LENGTH, STORE_ENV, Operator, ReviewStore, Role, require_store_url
from mmdx.store.passwords import DEFAULT_BCRYPT_ROUNDS

HELP = f"""\
Manage the local accounts of a review store: add, list, deactivate, activate, change a password, list and
clear sign-in locks.

Roles: clinician (reviews cases, submits verdicts), auditor (reads verdicts and the audit trail, exports),
admin (everything, including accounts). Passwords are stored as salted bcrypt hashes and need at least
{MIN_PASSWORD_LENGTH} characters.

Failed sign-ins are throttled per account and per client: after 5 failures of an account (20 from one
client) each further one locks sign-in for twice as long as the last, from 2 s up to 15 minutes. Every lock
ends by itself; `mmdx users unlock NAME` (or a password change) ends an account's lock at once, e.g. an
admin's.

The store is given by --store or, when that is absent, the {STORE_ENV} environment variable. Either is a
SQLAlchemy URL, e.g. sqlite:///runs/demo/review.sqlite or postgresql+psycopg://user:pw@host:5432/mmdx, or a
run directory, meaning its review.sqlite. Prefer {STORE_ENV} for PostgreSQL URLs with a password, so that
the password does not show in the process list or shell history.

examples:
  mmdx users add j.smith --role clinician --store runs/demo
  printf '%s\\n' "$PASSWORD" | mmdx users add audit1 --role auditor --password-stdin
  {STORE_ENV}=postgresql+psycopg://mmdx@db/mmdx mmdx users list
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "users",
        help="manage review accounts (clinician, auditor, admin)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help=f"review store URL or run directory (default: the {STORE_ENV} environment variable)",
    )
    secret = argparse.ArgumentParser(add_help=False)
    secret.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of prompting twice",
    )
    secret.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_BCRYPT_ROUNDS,
        help=f"bcrypt cost of the new hash, 4 to 20 (default {DEFAULT_BCRYPT_ROUNDS})",
    )
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)

    add = actions.add_parser("add", parents=[common, secret], help="create an account")
    add.add_argument("name", help="user name: a-z, 0-9 and . _ @ - (stored in lower case)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="the account's role")

    actions.add_parser("list", parents=[common], help="list all accounts")

    actions.add_parser("locks", parents=[common], help="list the sign-in locks in force")
    for name, text in (
        ("deactivate", "stop an account from signing in"),
        ("activate", "re-enable an account"),
        ("unlock", "end an account's sign-in lock now"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("name", help="user name")

    passwd = actions.add_parser("passwd", parents=[common, secret], help="set a new password for an account")
    passwd.add_argument("name", help="user name")


def read_password(from_stdin: bool, name: str) -> str:
    """One password line from standard input, or typed twice at a terminal prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise MmdxError(
                "--password-stdin read an empty line; pipe the password in, e.g. printf '%s\\n' \"$PW\""
            )
        return password
    if not sys.stdin.isatty():
        raise MmdxError(
            "standard input is not a terminal, so the password cannot be prompted for; use --password-stdin"
        )
    first = getpass.getpass(f"Password for {name}: ")
    second = getpass.getpass("Repeat the password: ")
    if first != second:
        raise MmdxError("the two passwords differ; nothing was changed, run the command again")
    return first


def _operator() -> Operator:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        login = f"uid{os.getuid()}"
    return Operator(login)


def run(args: argparse.Namespace) -> int:
    url = require_store_url(args.store)
    action = args.users_action
    operator = _operator()
    rounds = getattr(args, "rounds", DEFAULT_BCRYPT_ROUNDS)
    password = read_password(args.password_stdin, args.name) if action in ("add", "passwd") else None
    with ReviewStore(url, bcrypt_rounds=rounds) as store:
        if action == "add":
            info = store.add_user(args.name, args.role, password, actor=operator)
            print(
                f"added {info.role} account '{info.name}' to {store.url.render_as_string(hide_password=True)}"
            )
        elif action == "list":
            users = store.list_users(operator)
            if not users:
                print("no accounts yet; add one with: mmdx users add NAME --role admin")
                return 0
            width = max(len("name"), *(len(u.name) for u in users))
            print(f"{'name':<{width}}  {'role':<9}  {'active':<6}  created (UTC)")
            for user in users:
                created = user.created_at.strftime("%Y-%m-%d %H:%M:%S")
                print(
                    f"{user.name:<{width}}  {user.role.value:<9}  {'yes' if user.active else 'no':<6}  {created}"
                )
        elif action == "locks":
            locks = store.sign_in_locks(operator)
            for lock in locks:
                until = lock.until.strftime("%Y-%m-%d %H:%M:%S")
                print(
                    f"{lock.scope.value} {lock.subject}: {lock.failures} failures, locked until {until} UTC"
                )
            if not locks:
                print("no sign-in lock in force")
        elif action == "unlock":
            store.clear_sign_in_lock(args.name, actor=operator)
            print(f"sign-in lock of '{args.name.strip().lower()}' cleared")
        elif action in ("deactivate", "activate"):
            info = getattr(store, action)(args.name, actor=operator)
            print(f"account '{info.name}' is {'active' if info.active else 'deactivated'}")
        elif action == "passwd":
            store.set_password(args.name, password, actor=operator)
            print(f"password of '{args.name.strip().lower()}' changed")
        else:  # argparse only lets the actions above through
            raise MmdxError(f"unknown users action {action!r}")
    return 0
