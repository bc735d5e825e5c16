# One-command local system and test run. `make help` lists the targets.
#
# The local system (PostgreSQL, RabbitMQ, the three services) is driven by `python -m local_system`
# (standard library only, so `make down` works even without the virtualenv). State lives in .run/<profile>.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
# Profile of the local system: dev (make up) or test (make test's own servers); also $LOCAL_PROFILE.
LOCAL := $(PYTHON) -m local_system
# Requirement files that exist right now (services/requirements.txt may not exist yet on a fresh branch); the
# poster filters' own (Pillow) and the invoicer's (fpdf2) too: the local runner runs them in .venv.
REQUIREMENTS := $(wildcard requirements.txt requirements-dev.txt services/requirements.txt functions/posters/requirements.txt functions/invoices/requirements.txt)
PYTEST_ARGS ?=

.PHONY: help venv up down status logs start stop scale psql rebalance-billing token web-login env trace rotate-credentials test lint bench bench-floors bench-docs cost cost-budgets clean

help: ## Show this list
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Create .venv and install all requirement files

# Re-run pip only when a requirement file changed since the last install.
$(VENV)/.installed: $(REQUIREMENTS)
	$(PYTHON) -m local_system prereqs --venv
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet $(addprefix -r ,$(REQUIREMENTS))
	touch $@

up: venv ## Start PostgreSQL, RabbitMQ, Redis, Prometheus and the three services; wait until ready; print the URLs
	$(LOCAL) up

down: ## Stop everything `make up` started
	$(LOCAL) down

status: ## Table of part, pid, port, state
	@$(LOCAL) status || true  # exit 1 means "not all running"; the table already says so

logs: ## Tail the logs (SERVICE=billing for one part, FOLLOW=1 to follow)
	@$(LOCAL) logs $(SERVICE) $(if $(FOLLOW),-f)

start: venv ## Start one part: SERVICE=inventory|billing|gateway|postgres|rabbitmq|redis|cognito|posters|invoicer|web|prometheus
	@test -n "$(SERVICE)" || { echo "usage: make start SERVICE=billing"; exit 2; }
	$(LOCAL) start $(SERVICE)

stop: ## Stop one part: SERVICE=inventory|billing|gateway|postgres|rabbitmq|redis|cognito|posters|invoicer|web|prometheus
	@test -n "$(SERVICE)" || { echo "usage: make stop SERVICE=billing"; exit 2; }
	$(LOCAL) stop $(SERVICE)

# Extra copies listen on the profile's replica ports (dev: billing 8082+, test: 18082+); `make down` stops them.
scale: venv ## Run N copies of a service: SERVICE=billing REPLICAS=2 (REPLICAS=1 goes back to one)
	@test -n "$(SERVICE)" -a -n "$(REPLICAS)" || { echo "usage: make scale SERVICE=billing REPLICAS=2"; exit 2; }
	$(LOCAL) scale $(SERVICE) $(REPLICAS)

# SQL is read from the environment ("$$SQL"), so quotes inside it survive make and the shell.
psql: ## Query a database: DB=movies_db|billing_db|billing_db_shard_1 [SQL="select ..."]
	@$(LOCAL) psql $(or $(DB),movies_db) $(if $(SQL),-c "$$SQL")

rebalance-billing: ## Move billing rows after a shard-count change (docs/patterns/sharding.md): FROM=1 TO=2
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make rebalance-billing FROM=1 TO=2"; exit 2; }
	$(LOCAL) rebalance-billing --from $(FROM) --to $(TO)

token: ## Print a fresh access token (local Cognito emulator, all permissions): curl -H "Authorization: Bearer $$(make -s token)" ...
	@$(LOCAL) token

# The password is the demo user's own (.run/<profile>/cognito/identity.json, mode 0600); never logged.
web-login: ## Print the web front end's URL, user name and password (sign in at the URL `make up` printed)
	@$(LOCAL) web-login

env: ## Print a service's environment, passwords included (SERVICE=gateway)
	@test -n "$(SERVICE)" || { echo "usage: make env SERVICE=gateway"; exit 2; }
	@$(LOCAL) env $(SERVICE)

# Spans are in .run/<profile>/traces (tracing is on locally, every request sampled; docs/observability.md).
trace: ## Print one request's spans as a tree with timings: ID=<request id, trace id or last>
	@test -n "$(ID)" || { echo "usage: make trace ID=<request id | trace id | last>"; exit 2; }
	@$(LOCAL) trace "$(ID)"

# The four Secrets Manager rotation steps against the local secret and server (docs/operations.md).
rotate-credentials: ## Rotate a password like AWS does, services keep running: SERVICE=inventory|billing|rabbitmq
	@test -n "$(SERVICE)" || { echo "usage: make rotate-credentials SERVICE=inventory|billing|rabbitmq"; exit 2; }
	$(LOCAL) rotate-credentials $(SERVICE)

lint: venv ## ruff
	$(VENV)/bin/ruff check .

# Everything: ruff and every test. pytest starts its own servers (profile "test": other ports, .run/test)
# only when a test needs them, and stops them at the end. Both steps run; either failing fails the target.
# Chromium (Debian's package) for the browser tests: installed as root, else they skip and say how to install it.
test: venv ## ruff + all tests (unit, integration, e2e, infra, the web front end in Chromium)
	@$(LOCAL) prereqs --browser
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV_PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# No `npm ci` here: the CDK tests use the Python library (it needs Node, not the CDK CLI); the CLI in
# package.json is only for synth/deploy by hand.

# Bounded (2 x (2 + 10) s of GETs, then 10,000 orders), 127.0.0.1 only; installs wrk (apt) when missing.
# BENCH_ARGS="--seconds 20 --connections 64" changes the load (python -m bench --help). It leaves the system up.
BENCH_ARGS ?=
# Tracing as on AWS (prod samples 5 %); a system already up keeps its own setting. OTEL_TRACES_EXPORTER=none
# (after make down) measures without tracing (docs/tracing.md has both).
bench: export OTEL_TRACES_SAMPLER_ARG ?= 0.05
bench: up ## Measure the `make up` system with wrk: req/s, p50/p99, CPU ms/request, RSS; JSON in bench/results/
	$(VENV_PY) -m bench $(BENCH_ARGS)

bench-floors: up ## Floors: what bare WSGI apps (fixed body, proxy, token check, one SELECT) cost next to the services
	$(VENV_PY) -m bench.floors $(FLOORS_ARGS)

bench-docs: ## Rewrite the figures in docs/performance.md and README.md from a run (RESULT=file, default the newest)
	$(VENV_PY) -m bench.docs $(RESULT) $(if $(BASELINE),--baseline $(BASELINE))

# Synthesizes every environment (no credentials, no network, no bundling) and prices the templates (cost/prices.py).
cost: venv ## Monthly cost per environment at minimum and maximum autoscaling, from the synthesized templates
	@JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(VENV_PY) -m cost

cost-budgets: venv ## Rewrite stacks/budgets.json: each environment's AWS Budget = its maximum-scale cost + 20 %
	@JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(VENV_PY) -m cost --write-budgets

clean: ## Stop both local systems and delete their state (.run), caches and cdk.out
	$(LOCAL) --profile dev clean
	$(LOCAL) --profile test clean
	rm -rf .run .pytest_cache .ruff_cache cdk.out
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

# Container images (docs/containers.md). podman or docker, whichever exists; offline, a stand-in base.
.PHONY: images container-checks

images: ## Build the 3 images, run each hardened, check /health, non-root, HEALTHCHECK; print sizes
	scripts/images.sh check

container-checks: ## CI container step: hadolint, shellcheck, compose config, then `make images`
	scripts/container-checks.sh

# Delivery (docs/continuous-delivery.md). The smoke test is the script the pipeline runs after each deployment; here it
# runs against `make up`, with a token from the local Cognito emulator (passed in the environment, not argv).
.PHONY: smoke synth pipeline-synth
SMOKE_URL ?= http://127.0.0.1:3000

smoke: ## Smoke-test the local system: /health 200, /api/movies 401 without and 200 with a token
	@token=$$($(LOCAL) token) || { echo "could not get a token: is the local system up (make up)?"; exit 1; }; \
	SMOKE_TOKEN="$$token" $(PYTHON) scripts/smoke_test.py --url $(SMOKE_URL)

synth: venv ## Synthesize the CDK app for dev and prod into cdk.out/<env> (installs the pinned CDK CLI first)
	@[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet -c env=dev -o cdk.out/dev
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet -c env=prod -o cdk.out/prod

pipeline-synth: venv ## Synthesize the delivery pipeline (pipeline_app.py) into cdk.out/pipeline (needs npm ci)
	npx cdk synth --quiet -a "$(VENV_PY) pipeline_app.py" -o cdk.out/pipeline
