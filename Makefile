# drkonqi-lite: the two commands of the README are `make demo` and `make test`.
VENV   ?= .venv
# Debian's interpreter, not a per-user one (pyenv's lives under /root, mode 0700): tests run
# the app and the collector's readers as unprivileged users, who must be able to start it.
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo python3)
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: all deps venv bugsink-venv demo test lint typecheck unit integration bench clean deb

all: test

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$(grep -v '^#' packaging/debian-build-deps.txt) >/dev/null

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'

venv: $(PY)

# A real Sentry-protocol server for the reporting tests and benchmarks (tests/integration/
# bugsink.py): Bugsink in a venv of its own (~190 MB), so the app's venv stays lean.
BUGSINK_VENV ?= build/bugsink-venv
$(BUGSINK_VENV)/bin/bugsink-manage:
	$(PYTHON) -m venv $(BUGSINK_VENV)
	$(BUGSINK_VENV)/bin/pip install -q bugsink==2.6.2

bugsink-venv: $(BUGSINK_VENV)/bin/bugsink-manage

# The main job: a real crash through the real pipeline on this machine (root): the
# notification and the detail window are saved in demo-output/.
demo: $(PY)
	@command -v Xvfb >/dev/null && command -v dunst >/dev/null && command -v coredumpctl \
		>/dev/null && command -v import >/dev/null || $(MAKE) deps
	$(VENV)/bin/drkonqi-lite demo --output demo-output

lint: $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check collector drkonqi_lite

typecheck: $(PY)
	mkdir -p build/mypy && ln -sfn ../../collector build/mypy/drkonqi_lite_collector
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests benchmarks scripts/demo_crashes.py

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
