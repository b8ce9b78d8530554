# drkonqi-lite: the two commands of the README are `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: all deps venv demo test lint typecheck unit integration bench clean deb

all: test

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$(grep -v '^#' packaging/debian-build-deps.txt) >/dev/null

$(PY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'

venv: $(PY)

# The main job: a real crash through the real pipeline on this machine (root).
demo: $(PY)
	scripts/demo

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check collector drkonqi_lite

typecheck: $(PY)
	mkdir -p build/mypy && ln -sfn ../../collector build/mypy/drkonqi_lite_collector
	$(VENV)/bin/mypy

# Everything: lint, types, unit, Qt and integration tests against the real components.
test: lint typecheck
	$(PYTEST) -q -p no:cacheprovider -ra tests

unit: $(PY)
	$(PYTEST) -q tests/unit

# The Debian package (build/deb/drkonqi-lite_VERSION_ARCH.deb); tests/packaging/test_deb.py
# installs it when DRKONQI_LITE_DEB names it (.ci/run does).
deb:
	scripts/build-deb

bench: $(PY)
	$(PY) benchmarks/collector.py

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
