"""The local poster pipeline's settings (local_system/poster_resources.py, poster_pipeline.py): no servers."""

from __future__ import annotations

from contract import posters as C
from local_system.poster_pipeline import PosterPipeline
from local_system.poster_resources import filter_settings, poster_settings
from local_system.profiles import get_profile


def test_each_filter_sends_to_the_queue_the_next_one_reads():
    """validate -> VALIDATED -> resize -> RESIZED -> publish; the last sends only to RESULTS, all report there."""
    settings = filter_settings(get_profile("test"))
    assert list(settings) == list(C.FILTERS)
    queue = "http://127.0.0.1:26600/123456789012/{}".format
    assert settings["validate"]["NEXT_QUEUE_URL"] == queue(C.FILTERS["resize"].name)
    assert settings["resize"]["NEXT_QUEUE_URL"] == queue(C.FILTERS["publish"].name)
    assert "NEXT_QUEUE_URL" not in settings["publish"]
    assert {values["RESULTS_QUEUE_URL"] for values in settings.values()} == {queue(C.RESULTS.name)}


def test_inventory_gets_the_uploads_bucket_results_queue_and_emulator():
    """Inventory's poster settings name the local uploads bucket, RESULTS and the dev emulator's endpoints."""
    assert poster_settings(get_profile("dev")) == {
        "POSTER_UPLOAD_BUCKET": "movies-local-uploads",
        "POSTER_RESULTS_QUEUE_URL": "http://127.0.0.1:55600/123456789012/poster-results",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:55600",
        "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:55600",
    }


def test_runner_never_gets_the_callers_aws_credentials(monkeypatch):
    """The runner talks to the emulator with dummy keys; real AWS settings in the shell do not reach it."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    env = PosterPipeline(get_profile("test")).env()
    assert env["AWS_SECRET_ACCESS_KEY"] == "local" and "AWS_PROFILE" not in env
    assert env["AWS_ENDPOINT_URL_SQS"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:26600"


def test_posters_part_has_its_own_ports():
    """dev 55610, test 26610: the runner's health endpoint, next to the emulator's port."""
    assert (get_profile("dev").posters_port, get_profile("test").posters_port) == (55610, 26610)
