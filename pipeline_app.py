#!/usr/bin/env python3
"""CDK entry point of the delivery pipeline: ``npx cdk deploy -a "python3 pipeline_app.py" Movies-Pipeline``.

Deploy it once by hand (docs/continuous-delivery.md); afterwards every push to the configured branch runs the
pipeline, which updates itself (self-mutation) and deploys the stages of ``PIPELINE`` in ``stacks/pipeline_config.py``.
The app itself is built by ``stacks.application.build_pipeline_app``. Developers keep using ``app.py``
(``npx cdk deploy '**' -c env=dev``) for their own deployments.
"""

from stacks.application import build_pipeline_app

if __name__ == "__main__":
    app, _ = build_pipeline_app()
    app.synth()
