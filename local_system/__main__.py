"""Command line: ``python -m local_system [--profile dev|test] COMMAND`` (what the Makefile targets call)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

from local_system import images, prereqs
from local_system.credentials import BILLING_SHARD_DATABASES, CREDENTIAL_NAMES
from local_system.processes import LocalSystemError, tail
from local_system.profiles import DATABASES, PROFILE_ENV, SERVICES
from local_system.services import gunicorn_executable, traces_dir
from local_system.system import PARTS, LocalSystem
from local_system.traces import trace_report


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_up(system: LocalSystem, args: argparse.Namespace) -> int:
    """Start whatever is not running and wait until everything is ready."""
    began = time.monotonic()
    _say(f"local system '{system.profile.name}' (state in {system.state_dir})")
    urls = system.up(progress=_say, timeout=args.timeout)
    _say(f"\nall ready in {time.monotonic() - began:.1f} s:")
    for name, url in urls.items():
        _say(f"  {name:<10} {url}")
    gateway = urls["gateway"]
    username, _ = system.web_login()
    _say(f"\n  Web:      {system.web_url()}   sign in as {username!r}; its password: make web-login")
    _say(f"  API:      {gateway}/api/movies (needs a token: make token)\n  OpenAPI:  {gateway}/openapi.json"
         f"   Docs: {gateway}/docs")
    _say(f'  Try:      curl -H "Authorization: Bearer $(make -s token)" {gateway}/api/movies')
    _say(f"  Databases: {' | '.join(f'make psql DB={name}' for name in DATABASES)}    Stop: make down")
    prometheus = system.prometheus_url()
    _say(f"  Prometheus: {prometheus}   targets: {prometheus}/targets   alerts: {prometheus}/alerts")
    _say(f"  Posters:  filters validate -> resize -> publish on the emulator's S3/SQS ({system.posters.url}/health,"
         " make logs SERVICE=posters)")
    _say(f"  Invoicer: order.confirmed -> invoice PDF in the emulator's S3 -> invoice.ready"
         f" ({system.invoicer.url}/health,"
         " make logs SERVICE=invoicer)")
    return 0


def cmd_down(system: LocalSystem, args: argparse.Namespace) -> int:
    """Stop everything: services, broker, database."""
    system.down(progress=_say)
    _say(f"local system '{system.profile.name}' is down (state kept in {system.state_dir}; `make clean` resets)")
    return 0


def cmd_clean(system: LocalSystem, args: argparse.Namespace) -> int:
    """Stop everything and delete the profile's state folder (fresh databases and broker next time)."""
    system.reset(progress=_say)
    _say(f"deleted {system.state_dir}")
    return 0


def cmd_status(system: LocalSystem, args: argparse.Namespace) -> int:
    """Table of part, pid, port, state; exit 1 when anything is not running/ready."""
    rows = system.status()
    _say(f"{'PART':<10} {'PID':>8} {'PORT':>6}  STATE")
    for row in rows:
        _say(f"{row.part:<10} {row.pid or '-':>8} {row.port:>6}  {row.state}")
    return 0 if all(row.state in ("running", "ready") for row in rows) else 1


def cmd_logs(system: LocalSystem, args: argparse.Namespace) -> int:
    """Tail of the log files (one part or all); ``-f`` follows them."""
    files = system.log_files()
    chosen = [files[args.part]] if args.part else list(files.values())
    if args.follow:
        existing = [str(path) for path in chosen if os.path.exists(path)]
        if not existing:
            raise LocalSystemError("no log files yet; run `make up` first")
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *existing])  # noqa: S606 - fixed argv, no shell
    for path in chosen:
        _say(f"==> {path} <==\n{tail(path, args.lines)}\n")
    return 0


def cmd_start(system: LocalSystem, args: argparse.Namespace) -> int:
    """Start one part and wait until it is ready."""
    if args.part in SERVICES:
        system.start_infrastructure()
    system.start_service(args.part)
    _say(f"{args.part} is running")
    return 0


def cmd_stop(system: LocalSystem, args: argparse.Namespace) -> int:
    """Stop one part gracefully."""
    system.stop_service(args.part)
    _say(f"{args.part} is stopped")
    return 0


def cmd_scale(system: LocalSystem, args: argparse.Namespace) -> int:
    """Run N copies of a service (billing: competing consumers, one leader), each on its own port."""
    copies = system.scale(args.service, args.replicas, progress=_say)
    _say(f"{args.service}: {len(copies)} running ({', '.join(c.url for c in copies)}); `make status` lists them")
    return 0


def cmd_psql(system: LocalSystem, args: argparse.Namespace) -> int:
    """Open psql on a database as the app role (or run one statement with -c)."""
    argv, env = system.postgres.psql_argv(args.database)
    if args.command:
        statement = [*argv, "-X", "-v", "ON_ERROR_STOP=1", "-c", args.command]
        return subprocess.run(statement, env=env, check=False).returncode
    os.execvpe(argv[0], argv, env)  # noqa: S606 - psql replaces us so the terminal is its own
    return 0  # not reached


def cmd_rebalance_billing(system: LocalSystem, args: argparse.Namespace) -> int:
    """Move billing rows between the local shards after a shard-count change (python -m billing.rebalance)."""
    env = system.service_env("billing")
    python = gunicorn_executable().with_name("python")  # the services' virtualenv (psycopg2), as billing runs
    argv = [str(python), "-m", "billing.rebalance", "--from", str(args.old), "--to", str(args.new)]
    return subprocess.run(argv, env=env, check=False).returncode


def cmd_env(system: LocalSystem, args: argparse.Namespace) -> int:
    """Print a service's environment as shell assignments (includes passwords: for debugging only)."""
    env = system.service_env(args.service)
    for key in sorted(set(env) - set(os.environ) | {k for k in env if env[k] != os.environ.get(k)}):
        _say(f"{key}={shlex.quote(env[key])}")
    return 0


def cmd_rotate_credentials(system: LocalSystem, args: argparse.Namespace) -> int:
    """Rotate one login like AWS does (the 4 Secrets Manager steps, in the secret and the real server)."""
    _say(f"rotating the {args.name} login (secret in the local Secrets Manager, password in the server)")
    login = system.rotate_credentials(args.name, pause=args.pause, progress=lambda line: _say(f"  {line}"))
    _say(f"{args.name}: user {login.user} has a new password; running services pick it up on their next login")
    return 0


def cmd_token(system: LocalSystem, args: argparse.Namespace) -> int:
    """Print a fresh access token of the demo user (all permissions) from the local Cognito emulator."""
    print(system.token())
    return 0


def cmd_web_login(system: LocalSystem, args: argparse.Namespace) -> int:
    """Print the web front end's URL and the demo user's name and password (to your terminal only)."""
    username, password = system.web_login()
    print(f"{system.web_url()}\nuser name: {username}\npassword:  {password}")
    return 0


def cmd_trace(system: LocalSystem, args: argparse.Namespace) -> int:
    """Print one request's spans as a tree with timings: by trace id, request id or `last` (exit 1: none)."""
    folder = traces_dir(system.profile)
    lines = trace_report(folder, args.id)
    if not lines:
        print(f"no trace for {args.id!r} in {folder} (spans are written about half a second after a request)",
              file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def cmd_pids(system: LocalSystem, args: argparse.Namespace) -> int:
    """Print a part's pids on one line, leader first (gunicorn master, then its workers); exit 1 when stopped."""
    pids = system.process_ids(args.part)
    if not pids:
        print(f"{args.part} is not running", file=sys.stderr)
        return 1
    print(" ".join(map(str, pids)))
    return 0


def cmd_prereqs(system: LocalSystem, args: argparse.Namespace) -> int:
    """Install what is missing: python3-venv (--venv), Chromium for the browser tests (--browser) or the servers."""
    if args.venv:
        prereqs.ensure_venv_support()
    elif args.browser:
        prereqs.ensure_browser()
    else:
        prereqs.ensure_servers()
    return 0


def cmd_image_services(system: LocalSystem | None, args: argparse.Namespace) -> int:
    """Print each service and its container port, one per line (for scripts/images.sh; from the contract)."""
    for name, port in images.image_services():
        print(name, port)
    return 0


def cmd_check_env(system: LocalSystem | None, args: argparse.Namespace) -> int:
    """Print NAME=VALUE lines: the environment scripts/images.sh starts a service's image with."""
    for key, value in images.check_environment(args.service).items():
        print(f"{key}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_system", description=__doc__)
    parser.add_argument(
        "--profile", choices=("dev", "test"), help=f"which local system (default: ${PROFILE_ENV} or dev)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help=cmd_up.__doc__)
    up.add_argument("--timeout", type=float, default=60, help="seconds to wait for each service's /ready")
    up.set_defaults(func=cmd_up)
    commands.add_parser("down", help=cmd_down.__doc__).set_defaults(func=cmd_down)
    commands.add_parser("status", help=cmd_status.__doc__).set_defaults(func=cmd_status)
    commands.add_parser("clean", help=cmd_clean.__doc__).set_defaults(func=cmd_clean)

    logs = commands.add_parser("logs", help=cmd_logs.__doc__)
    logs.add_argument("part", nargs="?", choices=PARTS)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(func=cmd_logs)

    for name, func in (("start", cmd_start), ("stop", cmd_stop)):
        part = commands.add_parser(name, help=func.__doc__)
        part.add_argument("part", choices=PARTS)
        part.set_defaults(func=func)

    scale = commands.add_parser("scale", help=cmd_scale.__doc__)
    scale.add_argument("service", choices=SERVICES)
    scale.add_argument("replicas", type=int, help="how many copies (1 = back to just the service)")
    scale.set_defaults(func=cmd_scale)

    psql = commands.add_parser("psql", help=cmd_psql.__doc__)
    psql.add_argument("database", choices=(*DATABASES, *BILLING_SHARD_DATABASES))
    psql.add_argument("-c", dest="command", help="run this SQL and exit")
    psql.set_defaults(func=cmd_psql)

    rebalance = commands.add_parser("rebalance-billing", help=cmd_rebalance_billing.__doc__)
    rebalance.add_argument("--from", dest="old", type=int, required=True, help="shard count the rows follow now")
    rebalance.add_argument("--to", dest="new", type=int, required=True, help="shard count to move them to")
    rebalance.set_defaults(func=cmd_rebalance_billing)

    env = commands.add_parser("env", help=cmd_env.__doc__)
    env.add_argument("service", choices=SERVICES)
    env.set_defaults(func=cmd_env)

    commands.add_parser("token", help=cmd_token.__doc__).set_defaults(func=cmd_token)
    commands.add_parser("web-login", help=cmd_web_login.__doc__).set_defaults(func=cmd_web_login)

    rotate = commands.add_parser("rotate-credentials", help=cmd_rotate_credentials.__doc__)
    rotate.add_argument("name", choices=CREDENTIAL_NAMES, help="whose login: a database owner or the broker")
    rotate.add_argument("--pause", type=float, default=0.0, help="seconds between setSecret and finishSecret")
    rotate.set_defaults(func=cmd_rotate_credentials)

    trace = commands.add_parser("trace", help=cmd_trace.__doc__)
    trace.add_argument("id", help="a trace id, a request id (X-Request-ID) or `last`")
    trace.set_defaults(func=cmd_trace)

    pids = commands.add_parser("pids", help=cmd_pids.__doc__)
    pids.add_argument("part", choices=PARTS)
    pids.set_defaults(func=cmd_pids)

    pre = commands.add_parser("prereqs", help=cmd_prereqs.__doc__)
    pre.add_argument("--venv", action="store_true", help="only make sure `python3 -m venv` works")
    pre.add_argument("--browser", action="store_true", help="only make sure Debian's chromium is installed")
    pre.set_defaults(func=cmd_prereqs)

    # For the image checks: no local system involved.
    commands.add_parser("image-services", help=cmd_image_services.__doc__).set_defaults(
        func=cmd_image_services, local=False
    )
    check_env = commands.add_parser("check-env", help=cmd_check_env.__doc__)
    check_env.add_argument("service", choices=SERVICES)
    check_env.set_defaults(func=cmd_check_env, local=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        system = LocalSystem(args.profile) if getattr(args, "local", True) else None
        return args.func(system, args)
    except LocalSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
