"""inventory: CRUD on movies, stored in PostgreSQL ``movies_db``.

``create_app`` is the application factory gunicorn calls (``inventory:create_app()``).
"""

from __future__ import annotations

from flask import Flask

from common.config import DatabaseSettings, env_str
from common.db import ConnectionPool, Schema
from common.log import configure_logging
from common.web import init_app
from contract import environment as env
from contract.limits import MAX_REQUEST_BYTES
from contract.services import INVENTORY
from inventory import db
from inventory.routes import movies


def create_app(database: DatabaseSettings | None = None) -> Flask:
    """Build the inventory app; settings come from the environment unless given (tests pass their own)."""
    configure_logging(INVENTORY.name, env_str(env.LOG_LEVEL))
    app = Flask(__name__)
    # Movies are small; anything bigger than the gateway forwards is a mistake or an attack, answered 413
    # before it is read.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    settings = database or DatabaseSettings.from_env(default_name=INVENTORY.database)
    pool = ConnectionPool(settings, application_name=INVENTORY.name)
    schema = Schema(pool, INVENTORY.name, db.MIGRATIONS)
    db.STORE.install(app, db.MovieStore(pool, schema))
    try:
        schema.ensure()
    except Exception:  # noqa: BLE001 - database down at start-up: /ready says so, first use migrates
        app.logger.warning("database not reachable at start-up; schema will be migrated on first use")

    def database_ready() -> None:
        pool.ping()
        schema.ensure()

    init_app(app, INVENTORY.name, readiness={"database": database_ready})
    app.register_blueprint(movies)
    return app
