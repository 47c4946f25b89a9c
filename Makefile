# canarylab: the commands in README.md.  Every target sets itself up first.
SHELL := /bin/bash
VENV  := .venv/bin
EXPERIMENT ?= experiments/threads-4-vs-16.yml
# Extra options for `canarylab experiment run`, e.g. EXPERIMENT_ARGS='--duration 10s --warmup 2s'.
EXPERIMENT_ARGS ?=

.PHONY: help setup setup-minimal experiment test lint unit lab-up lab-test clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup:  ## install everything the tests need (apt, .venv, Go tools, base image)
	scripts/setup.sh

setup-minimal:
	scripts/setup.sh --minimal

# canarylab exits with the verdict (0 PASS, 1 FAIL, 3 INCONCLUSIVE, 4 INVALID);
# make succeeds whenever the experiment reached a verdict, and fails on errors (2) or Ctrl-C.
experiment: setup-minimal  ## run the first experiment on the local target (no VMs)
	. scripts/env.sh && { canarylab experiment run --target local $(EXPERIMENT_ARGS) $(EXPERIMENT); rc=$$?; \
	  case $$rc in 0|1|3|4) exit 0;; *) exit $$rc;; esac; }

lint: setup-minimal  ## ruff and mypy (strict)
	. scripts/env.sh && ruff check . && ruff format --check . && mypy

test: setup lint  ## the whole suite: lint, unit, integration, images, molecule, static checks, experiments
	. scripts/env.sh && pytest

unit: setup-minimal  ## the fast tests only
	. scripts/env.sh && pytest -m "not image and not molecule and not experiment and not static and not newcomer and not containerlab"

lab-up:  ## vagrant up: the full lab (VMs)
	. scripts/env.sh && vagrant up

lab-test:  ## tests/lab against a running lab
	. scripts/env.sh && pytest tests/lab

clean:
	rm -rf .cache/bin results .pytest_cache .mypy_cache .ruff_cache  # the builds stay in $${XDG_CACHE_HOME:-~/.cache}/canarylab
