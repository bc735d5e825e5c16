"""Part ``invoicer``: the saga's invoicer, run locally by ``local_system.invoicer_runner``.

On AWS the invoicer is a Lambda function fed by Amazon MQ's event source on ``invoicer.saga``; here one
background process (the virtualenv's Python: the handler needs fpdf2, boto3 and pika) consumes that queue from
the local RabbitMQ and runs the same handler, storing invoices in the emulator's bucket
(``local_system/saga_resources.py``). It starts after the broker and the emulator and answers ``GET /health`` on
127.0.0.1 (dev 55620, test 26620), which is what ``make status`` checks. Its JSON log lines (one per invoice and
per dead letter) are in ``.run/<profile>/invoicer/invoicer.log``: ``make logs SERVICE=invoicer``.
"""

from __future__ import annotations

import os

from local_system.poster_pipeline import PosterPipeline
from local_system.profiles import REPO_ROOT, Profile
from local_system.saga_resources import invoicer_settings

RUNNER_MODULE = "local_system.invoicer_runner"


class Invoicer(PosterPipeline):
    """Start and stop the profile's invoicer runner (started and awaited like the poster pipeline's)."""

    name = "invoicer"
    title = "the invoicer"
    process_marker = RUNNER_MODULE
    stop_timeout = 35  # an invoice being stored and announced finishes first

    def __init__(self, profile: Profile):
        super().__init__(profile)
        self.port = profile.invoicer_port
        self.home = profile.state_dir / "invoicer"
        self.pid_file = self.home / "invoicer.pid"
        self.log_file = self.home / "invoicer.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The runner's environment: the Lambda's settings pointed at the local broker and emulator, never the
        caller's AWS or broker settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RABBITMQ_", "INVOICES_"))}
        env.update(invoicer_settings(self.profile))
        env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        return env
