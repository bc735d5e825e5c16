"""How billing runs under gunicorn: exactly one worker (contract.services), consumer started by a worker hook."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from common import lifecycle


def gunicorn_config(monkeypatch, **variables: str):
    """common.gunicorn_config as gunicorn would load it with ``variables`` in the environment."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    import common.gunicorn_config as config

    return importlib.reload(config)


def test_billing_runs_one_worker_whatever_gunicorn_workers_asks(monkeypatch):
    """contract.services.BILLING.single_worker wins over GUNICORN_WORKERS, and the master says so."""
    config = gunicorn_config(monkeypatch, SERVICE_NAME="billing", GUNICORN_WORKERS="4")
    assert config.workers == 1
    warnings = []
    server = SimpleNamespace(log=SimpleNamespace(warning=lambda *args: warnings.append(args[0] % args[1:])))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setattr(config.os, "makedirs", lambda *a, **k: None)
    monkeypatch.setattr(config.shutil, "rmtree", lambda *a, **k: None)
    config.on_starting(server)
    assert warnings == [
        "billing runs exactly one worker (contract.services single_worker); ignoring GUNICORN_WORKERS=4"
    ]


@pytest.mark.parametrize("service", ["gateway", "inventory", "service"])
def test_other_services_run_the_workers_asked_for(monkeypatch, service):
    """Only single-worker services are capped; an unknown SERVICE_NAME is not an error."""
    assert gunicorn_config(monkeypatch, SERVICE_NAME=service, GUNICORN_WORKERS="3").workers == 3


def test_start_hooks_run_once_in_order_from_post_worker_init(monkeypatch):
    """post_worker_init runs what factories registered with on_start (billing: consumer.start), once."""
    config = gunicorn_config(monkeypatch, SERVICE_NAME="billing")
    monkeypatch.setattr(lifecycle, "_start_hooks", [])
    calls: list[str] = []
    lifecycle.on_start(lambda: calls.append("first"))
    lifecycle.on_start(lambda: calls.append("second"))
    config.post_worker_init(worker=None)
    config.post_worker_init(worker=None)
    assert calls == ["first", "second"]


def test_shutdown_hooks_run_newest_first_and_survive_a_failure(monkeypatch):
    """worker_exit runs the shutdown hooks in reverse order; one raising does not skip the others."""
    config = gunicorn_config(monkeypatch, SERVICE_NAME="billing")
    monkeypatch.setattr(lifecycle, "_shutdown_hooks", [])
    calls: list[str] = []
    lifecycle.on_shutdown(lambda: calls.append("store.close"))
    lifecycle.on_shutdown(lambda: 1 / 0)
    lifecycle.on_shutdown(lambda: calls.append("consumer.stop"))
    config.worker_exit(server=None, worker=None)
    assert calls == ["consumer.stop", "store.close"]
