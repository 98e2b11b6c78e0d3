# sleepy — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup test test-all bench lint format demo smoke validate tiny-model day sandbox-tools screenshots programs

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory sandbox-tools
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv: torch 2.13.0 (CPU) first, then sleepy with its dev extra

sandbox-tools: ## install bubblewrap (the sandbox's filesystem/network isolation) when root and missing
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) || \
	  echo "bubblewrap not installed: the sandbox falls back to weaker isolation (see README)"; }

test: setup ## run the test suite (slow tests excluded)
	$(BIN)/pytest -m "not slow" -q

test-all: setup ## run every test, slow ones included
	$(BIN)/pytest -q

bench: setup ## benchmarks: sandbox vs cargo-per-koan vs bare rustc, and more
	$(BIN)/python -m benchmarks

lint: setup ## ruff lint and format check, and the import layers (import-linter, pyproject.toml)
	$(BIN)/ruff check sleepy tests scripts benchmarks experiments hatch_build.py
	$(BIN)/ruff format --check sleepy tests scripts benchmarks experiments hatch_build.py
	$(BIN)/lint-imports

format: setup ## ruff format in place
	$(BIN)/ruff format sleepy tests scripts benchmarks experiments
	$(BIN)/ruff check --fix sleepy tests scripts benchmarks experiments

validate: setup ## validate every koan and the frozen evalset with rustc
	$(BIN)/sleepy koans validate

tiny-model: setup ## retrain sleepy-tiny from scratch (sleepy/conf/tiny_v3.yaml) and install it in sleepy/tiny/model
	$(BIN)/sleepy-tiny --config-name tiny_v3

PROGRAMS ?= outputs/programs
programs: $(PROGRAMS)/README.md ## programs people wrote, from Debian's rust-doc (installed when root) -> $(PROGRAMS)
$(PROGRAMS)/README.md: | setup
	@test -d /usr/share/doc/rust-doc/html || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq rust-doc >/dev/null); } || \
	  { echo "rust-doc not installed: apt-get install rust-doc"; exit 2; }
	$(BIN)/sleepy koans harvest --out $(PROGRAMS)

day: setup ## one day of the agent on 20 koans with sleepy-tiny
	$(BIN)/sleepy-day koans.count=20

smoke: setup ## one small cycle on sleepy-tiny (a couple of minutes): does everything run here?
	$(BIN)/sleepy-cycle experiment=smoke

demo: setup programs ## set up, then three full day -> sleep -> consolidate -> eval cycles on sleepy-tiny
	$(BIN)/sleepy-cycle experiment=demo

STORE ?= sqlite:///outputs/mlflow.db
screenshots: setup ## MLflow UI screenshots (headless Chromium) of STORE -> docs/screenshots/
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "chromium not installed: apt-get install -y chromium"; exit 2; }
	$(BIN)/python -m sleepy.screenshots --uri $(STORE) --out docs/screenshots
