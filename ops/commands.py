"""The command line's admin commands (create-user, reset-password, backup, restore, services,
check-config) and its argument parser; server.py runs `serve` and hands every other command here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pymongo.errors import PyMongoError

from domain import __version__
from domain.accounts.models import Role
from domain.assembly import Domain, build_domain
from domain.core.content import human_size
from domain.core.errors import DomainError
from domain.core.settings import Settings
from domain.infra.mongo import Database, open_mongo
from domain.infra.objects import ObjectStore, open_objects
from domain.infra.redis_store import open_redis
from domain.jobs.models import JobKinds
from ops.archive import ArchiveError, ArchiveReader, ArchiveWriter
from ops.backup import BackupError
from ops.backup import backup as run_backup
from ops.backup import restore as run_restore
from ops.backup import verify as verify_backup
from ops.embedded import EmbeddedServiceError
from ops.running import running_services, services_for_admin

log = logging.getLogger("labhub.commands")


def fail(message: str) -> int:
    print(f"labhub: {message}", file=sys.stderr)
    return 1


def stop_on_signals() -> asyncio.Event:
    """Set by SIGTERM or SIGINT (Ctrl-C): the running command then stops cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _read_password(path: str | None) -> str:
    if path == "-":
        return sys.stdin.readline().rstrip("\n")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit(fail("passwords do not match"))
    return first


@contextlib.asynccontextmanager
async def _domain_for_admin(settings: Settings) -> AsyncIterator[Domain]:
    """The same services `serve` builds (domain/assembly.py), on the server's MongoDB, Redis and S3:
    with Redis, a running server hears of what a command did (a sign-out closes the person's streams)."""
    s3 = settings.s3
    async with (
        services_for_admin(settings, frozenset({"mongo", "redis", "s3"})) as endpoints,
        open_mongo(endpoints.mongo_uri, settings.mongo.database) as db,
        open_redis(endpoints.redis_url, settings.redis.key_prefix) as redis,
        open_objects(
            endpoints.s3_endpoint_url, s3.access_key, s3.secret_key, s3.bucket, s3.region
        ) as objects,
    ):
        yield build_domain(settings, db, redis, objects, JobKinds())


@contextlib.asynccontextmanager
async def _stores_for_admin(
    settings: Settings, *, while_serving: bool
) -> AsyncIterator[tuple[Database, ObjectStore]]:
    s3 = settings.s3
    async with (
        services_for_admin(settings, frozenset({"mongo", "s3"}), while_serving=while_serving) as endpoints,
        open_mongo(endpoints.mongo_uri, settings.mongo.database) as db,
        open_objects(
            endpoints.s3_endpoint_url, s3.access_key, s3.secret_key, s3.bucket, s3.region
        ) as objects,
    ):
        yield db, objects


def _describe(manifest: dict[str, Any]) -> str:
    c = manifest["counts"]
    return (
        f"{c['collections']} collections, {c['documents']} documents, {c['objects']} objects, "
        f"{human_size(c['bytes'])} (LabHub {manifest['labhub_version']}, {manifest['created_at']})"
    )


async def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path)
    if args.verify:
        reader = ArchiveReader(path)
        try:
            manifest, problems = await asyncio.to_thread(verify_backup, reader)
        finally:
            reader.close()
        for problem in problems:
            print(f"damaged: {problem}", file=sys.stderr)
        if problems:
            return fail(f"{path} is damaged: {len(problems)} of {len(manifest['files'])} files do not match")
        print(f"{path} is intact: {_describe(manifest)}")
        return 0
    writer = ArchiveWriter(path)
    try:
        async with _stores_for_admin(settings, while_serving=True) as (db, objects):
            manifest = await run_backup(db, objects, writer, version=__version__)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    print(f"backup written to {path}: {_describe(manifest)}")
    if manifest["requeued_jobs"]:
        print(
            f"{len(manifest['requeued_jobs'])} running jobs are in it as queued: they run again after a restore"
        )
    if manifest["missing_objects"]:
        print(f"{len(manifest['missing_objects'])} referenced objects were not in storage when they were copied "
              "(deleted during the backup, or still being uploaded); listed in the manifest as missing_objects",
              file=sys.stderr)  # fmt: skip
    return 0


async def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    reader = ArchiveReader(Path(args.path))
    try:
        async with _stores_for_admin(settings, while_serving=False) as (db, objects):
            manifest = await run_restore(
                reader, db, objects, force=args.force, part_size=settings.uploads.part_size_bytes
            )
    finally:
        reader.close()
    print(f"restored {args.path}: {_describe(manifest)}")
    return 0


async def create_user(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args.password_file)
    async with _domain_for_admin(settings) as domain:
        try:
            user = await domain.accounts.create(
                email=args.email, password=password, name=args.name or args.email.split("@")[0],
                role=Role(args.role),
            )  # fmt: skip
        except DomainError as exc:
            return fail(exc.detail)
    print(f"created {user.role.value} {user.email} (id {user.id})")
    return 0


async def reset_password(settings: Settings, args: argparse.Namespace) -> int:
    """For a head locked out: a one-time reset link, or a new password from a file."""
    password = _read_password(args.password_file) if args.password_file else None
    async with _domain_for_admin(settings) as domain:
        try:
            if password is not None:
                user = await domain.password_resets.set_by_command(
                    args.email, password, revoke_tokens=args.revoke_tokens
                )
                print(f"password set for {user.email}; every session of the account is signed out")
                return 0
            user, link = await domain.password_resets.link_for_command(args.email)
        except DomainError as exc:
            return fail(exc.detail)
    print(f"reset link for {user.email} (works once, until {link.expires_at:%Y-%m-%d %H:%M} UTC):")
    print(link.url)
    return 0


def _shared_secret(path: Path, value: str) -> str:
    """path holding value (0600), for instances that share it; written if it is missing or differs."""
    if not path.exists() or path.read_text(encoding="utf-8").strip() != value:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


async def services_command(settings: Settings, args: argparse.Namespace) -> int:
    """Only the embedded services, for LabHub instances in external mode (one host, several instances)."""
    if settings.services.mode == "external":
        return fail("services.mode is external: there are no embedded services to run")
    stop = stop_on_signals()
    secrets_dir = settings.data_path / "secrets"
    async with running_services(settings) as services:
        endpoints = services.endpoints()
        found = {
            "mongo_uri": endpoints.mongo_uri,
            "redis_url": endpoints.redis_url,
            "s3_endpoint_url": endpoints.s3_endpoint_url,
            "s3_access_key": settings.s3.access_key,
            "s3_secret_key_file": _shared_secret(secrets_dir / "s3_secret", settings.s3.secret_key),
        }
        # every instance must sign and check tokens with one secret: the generated one, if in use
        generated_jwt = secrets_dir / "jwt_secret"
        if (
            generated_jwt.exists()
            and generated_jwt.read_text(encoding="utf-8").strip() == settings.auth.jwt_secret
        ):
            found["jwt_secret_file"] = str(generated_jwt)
        if args.env:
            names = {
                "mongo_uri": "MONGO_URI", "redis_url": "REDIS_URL", "s3_endpoint_url": "S3_ENDPOINT_URL",
                "s3_access_key": "S3_ACCESS_KEY", "s3_secret_key_file": "S3_SECRET_KEY_FILE",
                "jwt_secret_file": "AUTH_JWT_SECRET_FILE",
            }  # fmt: skip
            print("export LABHUB_SERVICES_MODE=external")
            for key, value in found.items():
                print(f"export LABHUB_{names[key]}={shlex.quote(value)}")
        else:
            print(json.dumps(found))
        sys.stdout.flush()
        await stop.wait()
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labhub", description=__doc__)
    parser.add_argument("--config", help="config file (default: config.toml or $LABHUB_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run LabHub (embedded services unless configured external)")
    serve_cmd.add_argument("--host", help="listen address (overrides http.host)")
    serve_cmd.add_argument("--port", type=int, help="listen port (overrides http.port)")
    user_cmd = commands.add_parser("create-user", help="create an account with any role")
    user_cmd.add_argument("--email", required=True)
    user_cmd.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_cmd.add_argument("--name", help="display name (default: the part of the email before @)")
    user_cmd.add_argument(
        "--password-file", help="read the password from this file ('-' = stdin) instead of a prompt"
    )
    reset_cmd = commands.add_parser(
        "reset-password",
        help="a one-time password reset link for an account (or set its password from a file)",
    )
    reset_cmd.add_argument("--email", required=True)
    reset_cmd.add_argument(
        "--password-file",
        help="set this password ('-' = stdin) instead of printing a link; signs out every session",
    )
    reset_cmd.add_argument(
        "--revoke-tokens",
        action="store_true",
        help="with --password-file: also revoke every personal access token",
    )
    backup_cmd = commands.add_parser(
        "backup",
        help="write a backup archive (a directory, or a .tar) while the server runs; --verify checks one",
    )
    backup_cmd.add_argument(
        "path", help="where to write the archive (a new directory, or a name ending .tar)"
    )
    backup_cmd.add_argument(
        "--verify", action="store_true", help="re-hash the archive at PATH instead of writing one"
    )
    restore_cmd = commands.add_parser(
        "restore", help="load a backup into empty services (stop the server first), then serve as usual"
    )
    restore_cmd.add_argument("path", help="the archive: a backup directory or .tar")
    restore_cmd.add_argument(
        "--force", action="store_true", help="replace whatever the database and bucket hold now"
    )
    services_cmd = commands.add_parser(
        "services",
        help="run only the embedded MongoDB, Redis and S3 (for instances in external mode); prints where they are",
    )
    services_cmd.add_argument(
        "--env", action="store_true", help="print export LABHUB_...= lines to source instead of JSON"
    )
    commands.add_parser("check-config", help="validate the configuration and print it (secrets hidden)")
    return parser


def run_admin(settings: Settings, args: argparse.Namespace) -> int:
    """Run the admin command args names; a service, the disk or an archive that fails is one line."""
    admin = {
        "create-user": create_user, "reset-password": reset_password,
        "backup": backup_command, "restore": restore_command, "services": services_command,
    }  # fmt: skip
    try:
        return asyncio.run(admin[args.command](settings, args))
    except (EmbeddedServiceError, BackupError, ArchiveError) as exc:
        return fail(str(exc))
    except (PyMongoError, BotoCoreError, ClientError, OSError) as exc:  # a service or the disk failed
        log.debug("%s failed", args.command, exc_info=True)
        return fail(f"{args.command} failed: {type(exc).__name__}: {exc}")
