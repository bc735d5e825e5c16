"""Part ``posters``: the poster pipeline's three filters, run locally by ``local_system.poster_runner``.

On AWS each filter is a Lambda function fed by its SQS queue; here one background process (the virtualenv's
Python: the filters need boto3 and Pillow) runs the same handler functions against the emulator's queues and
buckets (``local_system/poster_resources.py``). It starts after the emulator and answers ``GET /health`` on
127.0.0.1 (dev 55610, test 26610), which is what ``make status`` checks. Its JSON log lines (one per image
and per failure) are in ``.run/<profile>/posters/posters.log``: ``make logs SERVICE=posters``.
"""

from __future__ import annotations

import os

from local_system.emulator_api import DUMMY_KEY, REGION
from local_system.parts import ServerPart
from local_system.poster_resources import emulator_url
from local_system.processes import LocalSystemError, http_status, spawn, tail
from local_system.profiles import REPO_ROOT, Profile

START_TIMEOUT = 30
RUNNER_MODULE = "local_system.poster_runner"


class PosterPipeline(ServerPart):
    """Start and stop the profile's poster runner."""

    name = "posters"
    title = "the poster pipeline"
    process_marker = RUNNER_MODULE
    stop_timeout = 35  # a batch being processed finishes first

    def __init__(self, profile: Profile):
        self.profile = profile
        self.port = profile.posters_port
        self.home = profile.state_dir / "posters"
        self.pid_file = self.home / "posters.pid"
        self.log_file = self.home / "posters.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The runner's environment: the emulator's endpoints and dummy keys, never the caller's AWS settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        endpoint = emulator_url(self.profile)
        env.update(
            AWS_ACCESS_KEY_ID=DUMMY_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_KEY, AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL_S3=endpoint, AWS_ENDPOINT_URL_SQS=endpoint,
            PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        """Start the runner (if not running) and wait until its /health answers 200."""
        self.home.mkdir(parents=True, exist_ok=True)
        spawned = None
        if self.pid() is None:
            self._check_ports_free()
            python = REPO_ROOT / ".venv" / "bin" / "python"
            if not python.exists():
                raise LocalSystemError(f"the virtualenv is missing ({self.title} needs boto3 and more); run: make venv")
            argv = [str(python), "-m", self.process_marker, "--profile", self.profile.name, "--port", str(self.port)]
            spawned = spawn(argv, self.log_file, self.env(), REPO_ROOT, self.pid_file)
        if not self._wait_ready(lambda: http_status(f"{self.url}/health", timeout=1) == 200, START_TIMEOUT, spawned):
            raise LocalSystemError(f"{self.title} did not start; see {self.log_file}:\n{tail(self.log_file, 15)}")
