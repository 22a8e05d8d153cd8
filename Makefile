# The two promises of the README: `make run` and `make test`, both from a fresh clone.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= .wadows
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install system-deps run sample test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "Python 3.11 is required (spyne 2.14 does not import on 3.12+); set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the test suite uses as oracles; installed only when missing.
system-deps:
	@./.ci/debian-packages

sample: install
	$(VENV)/bin/wadows sample $(DATA)/sample

run: sample
	$(VENV)/bin/wadows serve --store $(DATA)/sample --data-dir $(DATA) --config examples/wadows.toml --host $(HOST) --port $(PORT)

test: install system-deps
	$(PY) -m pytest

bench: install system-deps
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) bench/retrieve.py --anonymize
	$(PY) bench/deid.py
	$(PY) bench/peers.py --sizes 50 200 2000
	$(PY) bench/load.py --workers-list 1 2 4

clean:
	rm -rf $(VENV) $(DATA) build *.egg-info .pytest_cache
