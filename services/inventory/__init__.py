"""inventory: CRUD on movies, stored in PostgreSQL ``movies_db``.

``create_app`` is the application factory gunicorn calls (``inventory:create_app()``).
"""

from __future__ import annotations

from flask import Flask

from common.config import DatabaseSettings, env_str
from common.db import ConnectionPool, Schema
from common.log import configure_logging
from common.web import init_app
from inventory import db
from inventory.routes import movies


def create_app(database: DatabaseSettings | None = None) -> Flask:
    """Build the inventory app; settings come from the environment unless given (tests pass their own)."""
    configure_logging("inventory", env_str("LOG_LEVEL", "INFO"))
    app = Flask(__name__)
    # Movies are small; anything bigger is a mistake or an attack, answered 413 before it is read.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    settings = database or DatabaseSettings.from_env(default_name="movies_db")
    pool = ConnectionPool(settings, application_name="inventory")
    schema = Schema(pool, "inventory", db.MIGRATIONS)
    app.extensions["movies_store"] = db.MovieStore(pool, schema)
    try:
        schema.ensure()
    except Exception:  # noqa: BLE001 - database down at start-up: /ready says so, first use migrates
        app.logger.warning("database not reachable at start-up; schema will be migrated on first use")

    def database_ready() -> None:
        pool.ping()
        schema.ensure()

    init_app(app, "inventory", readiness={"database": database_ready})
    app.register_blueprint(movies)
    return app
