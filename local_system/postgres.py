"""A private PostgreSQL server: one cluster per profile, both databases, one login role per owning service.

Layout (``.run/<profile>/postgres/``): ``data/`` (the cluster), ``socket/`` (unix socket, admin only),
``postgres.log``. Each service connects over TCP 127.0.0.1 with scram-sha-256 as its own role (``inventory``
owns movies_db, ``billing`` owns billing_db), so one service's password rotates without touching the other.
PostgreSQL refuses to run as root, so when we are root the cluster belongs to the ``postgres`` system user
(created by the Debian package) and every server-side command runs as that user.

(Over 250 lines: one server's whole life in one place: directories and ownership when root, initdb, config,
roles and databases, passwords, stop.)
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from local_system.credentials import BILLING_SHARD_DATABASES, Credentials, Login, local_password
from local_system.parts import ServerPart
from local_system.prereqs import postgres_bin_dir
from local_system.processes import LocalSystemError, tail
from local_system.profiles import DATABASES, REPO_ROOT, Profile

SUPERUSER = "postgres"
SAFE_VALUE = re.compile(r"[A-Za-z0-9_-]+")
ENSURE_ROLE_SQL = """
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\\gexec
-- Always re-applied, so credentials.env stays the single source of truth.
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
"""
ENSURE_DATABASE_SQL = """
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\\gexec
ALTER DATABASE :"db" OWNER TO :"role";
-- Only the owning service's role may connect: rotating one service's password concerns that service only.
REVOKE CONNECT, TEMPORARY ON DATABASE :"db" FROM PUBLIC;
\\c :"db"
ALTER SCHEMA public OWNER TO :"role";
-- Before per-service roles, one shared role (LEGACY_ROLE) owned every table: hand its objects over.
SELECT format('REASSIGN OWNED BY %I TO %I', :'legacy', :'role')
WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'legacy')
\\gexec
\\c postgres
"""
#: The read-only role the local Prometheus's PostgreSQL exporter logs in with (statistics views only).
MONITORING_ROLE = "monitoring"
MONITORING_SQL = "GRANT pg_monitor TO :\"role\";\n"
#: The role every service shared before each got its own; its objects move to their database's owner.
LEGACY_ROLE = "app"
SET_PASSWORD_SQL = "ALTER ROLE :\"role\" WITH PASSWORD :'password';\n"  # noqa: S105 - psql variables
#: Where the cluster goes when the repository is out of the postgres user's reach (see _create_home).
FALLBACK_ROOT = Path("/var/tmp/local-system")  # noqa: S108 - a fixed, root-created folder, not a temp file
#: Longest unix socket path the kernel accepts is 107 bytes; stay clear of it.
MAX_SOCKET_PATH = 100


class PostgresServer(ServerPart):
    """Start, stop and administer the profile's private PostgreSQL cluster."""

    name = "postgres"
    title = "PostgreSQL"
    stop_timeout = 30

    def __init__(self, profile: Profile, credentials: Callable[[], Credentials]):
        self.profile = profile
        self._load_credentials = credentials
        self.port = profile.postgres_port
        self.link = profile.state_dir / "postgres"

    @property
    def credentials(self) -> Credentials:
        """The generated passwords (read on first use, so inspecting status creates nothing)."""
        return self._load_credentials()

    # -- paths -------------------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The real directory behind ``.run/<profile>/postgres`` (see ``_create_home``)."""
        return self.link.resolve()

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def pid_file(self) -> Path:
        """Written by the postmaster itself."""
        return self.data_dir / "postmaster.pid"

    @property
    def process_marker(self) -> str:
        """The postmaster's command line names its data folder: a recycled pid cannot pass for ours."""
        return str(self.data_dir)

    # -- running as the right user -----------------------------------------------------------------------
    @staticmethod
    def _owner() -> pwd.struct_passwd | None:
        """The system user that owns and runs the cluster when we are root; None when we are not root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise LocalSystemError(
                "PostgreSQL refuses to run as root and there is no 'postgres' system user; "
                "install the server with: apt-get install -y postgresql"
            ) from exc

    def _run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a server-side command (initdb, pg_ctl) as the cluster owner."""
        owner = self._owner()
        if owner is not None:
            kwargs.update(user=owner.pw_uid, group=owner.pw_gid, extra_groups=[])
            kwargs["env"] = {**kwargs.get("env", os.environ), "HOME": owner.pw_dir, "USER": owner.pw_name}
        return subprocess.run(argv, cwd=self.home, stdin=subprocess.DEVNULL, **kwargs)

    def _reachable_by(self, owner: pwd.struct_passwd, directory: Path) -> bool:
        """True when ``owner`` can traverse every folder down to ``directory``."""
        result = subprocess.run(
            ["test", "-x", str(directory)], user=owner.pw_uid, group=owner.pw_gid, extra_groups=[], check=False
        )
        return result.returncode == 0

    def _create_home(self) -> None:
        """Create ``.run/<profile>/postgres``, owned by the cluster owner.

        When the repository sits where the ``postgres`` user cannot enter (e.g. under /root) or its path is
        too long for a unix socket, the folder lives in /var/tmp and ``.run/<profile>/postgres`` links to it.
        """
        if self.link.exists():
            return
        if self.link.is_symlink():  # dangling: its target in /var/tmp was cleaned up; start afresh
            self.link.unlink()
        owner = self._owner()
        self.link.parent.mkdir(parents=True, exist_ok=True)
        too_long = len(str(self.link / "socket" / f".s.PGSQL.{self.port}")) > MAX_SOCKET_PATH
        unreachable = owner is not None and not self._reachable_by(owner, self.link.parent)
        if too_long or unreachable:
            digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
            real = FALLBACK_ROOT / f"{digest}-{self.profile.name}-postgres"
            real.mkdir(parents=True, exist_ok=True)
            FALLBACK_ROOT.chmod(0o755)
            self.link.symlink_to(real)
        else:
            self.link.mkdir()
        self.home.chmod(0o700)
        if owner is not None:
            os.chown(self.home, owner.pw_uid, owner.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Initialise the cluster on first use, start it (if not running), ensure role and databases."""
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise LocalSystemError("PostgreSQL server binaries not found; run: apt-get install -y postgresql")
        self._create_home()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        self._write_config()
        if self.pid() is None:
            self._check_ports_free()
            result = self._run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "--wait",
                    "--timeout=60",
                    "--silent",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                ],
                check=False,
                # Its own session: Ctrl-C in the terminal that ran `make up` must not stop the database.
                start_new_session=True,
            )
            if result.returncode != 0:
                raise LocalSystemError(f"PostgreSQL did not start; see {self.log_file}:\n{tail(self.log_file, 20)}")
        self._ensure_role_and_databases()

    def _initdb(self, bin_dir: Path) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-finished initdb from an interrupted run
        locale = "C.UTF-8" if _has_locale("C.utf8") else "C"
        result = self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                f"--locale={locale}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise LocalSystemError(f"initdb failed:\n{result.stdout}{result.stderr}")
        with open(self.data_dir / "postgresql.conf", "a") as handle:
            handle.write("\n# Settings written by local_system on every start.\ninclude = 'local_system.conf'\n")

    def _write_config(self) -> None:
        """(Re)write the settings that follow from the profile, and the access rules."""
        self.socket_dir.mkdir(exist_ok=True)
        owner = self._owner()
        if owner is not None:
            os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)
        self.socket_dir.chmod(0o700)
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0700",
            "password_encryption": "'scram-sha-256'",
            # 2 workers x pool per service, test clients, benchmark: well above the default 100.
            "max_connections": "200",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        if self.profile.name == "test":
            # Test data is thrown away; skipping fsync makes the suite faster and changes no behaviour.
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        (self.data_dir / "local_system.conf").write_text(
            "# Written by local_system; edits are overwritten.\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        # The socket folder is 0700, so 'trust' on it admits only the cluster owner (and root);
        # everything else must come over TCP with the scram password.
        (self.data_dir / "pg_hba.conf").write_text(
            "# Written by local_system.\n"
            "# TYPE  DATABASE  USER  ADDRESS        METHOD\n"
            "local   all       all                  trust\n"
            "host    all       all   127.0.0.1/32   scram-sha-256\n"
        )

    def admin_sql(self, sql: str) -> str:
        """Run SQL as the superuser over the unix socket (SQL on stdin, so no secret shows in ``ps``)."""
        result = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LocalSystemError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def _ensure_role_and_databases(self) -> None:
        """Create each owning service's role and database if missing; (re)set the roles' passwords."""
        script = [f"\\set legacy '{LEGACY_ROLE}'"]
        for database in DATABASES:
            login = self.credentials.database(database)
            script += [self._variables(role=login.user, password=login.password, db=database), ENSURE_ROLE_SQL]
            script.append(ENSURE_DATABASE_SQL)
        for shard_database in BILLING_SHARD_DATABASES:  # billing's shards 1..: billing's role owns them too
            login = self.credentials.database(shard_database)
            script += [self._variables(role=login.user, password=login.password, db=shard_database),
                       ENSURE_DATABASE_SQL]
        monitoring = self.monitoring_login()
        script += [self._variables(role=monitoring.user, password=monitoring.password), ENSURE_ROLE_SQL, MONITORING_SQL]
        self.admin_sql("\n".join(script) + "\n")

    def monitoring_login(self) -> Login:
        """The monitoring role's login (pg_monitor: statistics only, no table data; CONNECT on ``postgres``)."""
        return Login(MONITORING_ROLE, local_password(self.profile.state_dir / "monitoring-password"))

    @staticmethod
    def _variables(**values: str) -> str:
        """psql ``\\set`` lines: :'x' is then a quoted literal, :"x" a quoted identifier, so the SQL is constant."""
        for value in values.values():
            if not SAFE_VALUE.fullmatch(value):
                raise LocalSystemError("credentials hold characters other than letters, digits, '-', '_'")
        return "\n".join(f"\\set {key} '{value}'" for key, value in values.items())

    def set_password(self, role: str, password: str) -> None:
        """Give ``role`` a new password (sessions already open keep running, as after ALTER ROLE on RDS)."""
        self.admin_sql(self._variables(role=role, password=password) + "\n" + SET_PASSWORD_SQL)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the server: 'fast' (roll back, disconnect clients), then 'immediate' if that hangs."""
        # Not the base's SIGTERM: pg_ctl shuts the cluster down in the mode we choose and removes postmaster.pid.
        if self.pid() is None:
            return False
        timeout = self.stop_timeout if timeout is None else timeout
        bin_dir = postgres_bin_dir()
        for mode in ("fast", "immediate"):
            result = self._run(
                [
                    str(bin_dir / "pg_ctl"),
                    "stop",
                    "--wait",
                    f"--timeout={int(timeout)}",
                    "--silent",
                    "-m",
                    mode,
                    "-D",
                    str(self.data_dir),
                ],
                check=False,
                capture_output=True,
            )
            if result.returncode == 0:
                return True
        raise LocalSystemError(f"PostgreSQL did not stop; see {self.log_file}")

    # -- client side -------------------------------------------------------------------------------------
    def dsn(self, database: str) -> str:
        """libpq connection string as the database's owner over TCP (contains the password: do not log it)."""
        login = self.credentials.database(database)
        return (
            f"host=127.0.0.1 port={self.port} dbname={database} user={login.user} "
            f"password={login.password} sslmode=disable"
        )

    def psql_argv(self, database: str, login: Login | None = None) -> tuple[list[str], dict[str, str]]:
        """argv and environment for ``psql`` as ``login`` (default: the database's owner; password in PGPASSWORD)."""
        if database not in (*DATABASES, *BILLING_SHARD_DATABASES):
            raise LocalSystemError(f"unknown database {database!r}; use one of: {', '.join(DATABASES)}")
        login = login or self.credentials.database(database)
        env = {**os.environ, "PGPASSWORD": login.password, "PGSSLMODE": "disable"}
        argv = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", login.user, "-d", database]
        return argv, env


def _has_locale(name: str) -> bool:
    """True when the C library knows the locale (C.UTF-8 is built into glibc >= 2.35)."""
    try:
        result = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    except OSError:
        return False
    return name.lower() in result.stdout.lower().split()
