# The two commands a newcomer needs: `make run` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV := uv run --locked

api-docs: setup infra-up ## Regenerate docs/api/ from the api tests
	$(UV) pytest -q services/api/tests/integration/marketplace/test_api_examples.py

.PHONY: api-docs help setup run infra-up infra-down tools lint typecheck test test-unit test-integration test-disruptive

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install the toolchain (uv) and the workspace's packages
	@scripts/bootstrap

run: setup ## Start auth, api and push in the local profile with demo data (no servers needed)
	$(UV) python scripts/run_local.py

tools: ## Install helm, kustomize, kubeconform and the Kubernetes schemas (cached; for tests/deploy)
	scripts/tools install

infra-up: ## Install and start PostgreSQL+PostGIS, Kafka, Zipkin, OpenBao on 127.0.0.1
	scripts/infra up

infra-down: ## Stop the local infrastructure
	scripts/infra down

lint: setup ## ruff check and ruff format --check
	$(UV) ruff check .
	$(UV) ruff format --check .

typecheck: setup ## mypy --strict over every member
	$(UV) mypy .

test-unit: setup tools ## Unit tests only (no servers)
	$(UV) pytest -m "not integration and not disruptive"

test-integration: setup infra-up ## Integration tests against the real servers
	@scripts/install-browser
	$(UV) pytest -m "integration and not disruptive"

test-disruptive: setup infra-up ## Tests that stop and restart shared servers; run alone
	$(UV) pytest -m disruptive

test: setup infra-up tools lint typecheck ## Everything CI runs: lint, types, unit + integration tests
	@scripts/install-browser
	$(UV) pytest -m "not disruptive"
	$(UV) pytest -m disruptive
	@scripts/check-api-docs

.PHONY: import-stores generate-stores import-menus collect-menus bench-import

import-stores: setup ## Import store files: make import-stores FILE="a.csv [b.csv]" [ARGS="--dry-run"]
	@test -n "$(FILE)" || { echo 'usage: make import-stores FILE=<store file(s)> [ARGS=...]'; exit 2; }
	$(UV) import-stores $(FILE) $(ARGS)

generate-stores: setup ## Write a realistic Seoul store file: make generate-stores OUT=x.csv [ROWS=554092]
	$(UV) generate-stores $(or $(OUT),.local/seoul_generated.csv) --rows $(or $(ROWS),554092) $(ARGS)

import-menus: setup ## Attach menus (Kakao JSON, collector JSONL, CSV): make import-menus FILE=...
	@test -n "$(FILE)" || { echo 'usage: make import-menus FILE=<menu file(s)> [ARGS=...]'; exit 2; }
	$(UV) import-menus $(FILE) $(ARGS)

collect-menus: setup ## Read menus from Kakao place pages: make collect-menus STORES=s.csv OUT=m.jsonl
	@scripts/install-browser
	$(UV) collect-menus $(STORES) $(OUT) $(ARGS)

bench-import: setup infra-up ## Bench import-stores vs row-by-row ORM (writes bench/import/results.md)
	$(UV) python bench/import/run.py --rows $(or $(ROWS),554092)
