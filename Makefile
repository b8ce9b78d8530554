# drkonqi-lite: the two commands of the README are `make demo` and `make test`.
VENV   ?= .venv
# Debian's interpreter, not a per-user one (pyenv's lives under /root, mode 0700): tests run
# the app and the collector's readers as unprivileged users, who must be able to start it.
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo python3)
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# Written only after pip succeeded: a venv left half-made by an interrupted run (its bin/python
# exists, its packages do not) is not mistaken for a complete one, and editing pyproject.toml
# reinstalls.
STAMP  := $(VENV)/.installed

.PHONY: all deps setup venv bugsink-venv demo test lint typecheck unit integration bench clean deb

all: test

# The Debian packages of packaging/debian-build-deps.txt, python3 among them; a no-op (13 ms)
# when none is missing.
deps:
	@scripts/install-deps

# The Debian packages first: pip builds systemd-python with gcc, pkg-config and libsystemd-dev.
$(STAMP): pyproject.toml
	@scripts/install-deps
	@$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Everything `make demo` and `make test` need before they run anything.
setup: deps $(STAMP)
venv: setup

# A real Sentry-protocol server for the reporting tests and benchmarks (tests/integration/
# bugsink.py): Bugsink in a venv of its own (~190 MB), so the app's venv stays lean.
# Stamped like the app's venv.
BUGSINK_VENV ?= build/bugsink-venv
$(BUGSINK_VENV)/.installed:
	@scripts/install-deps
	@$(BUGSINK_VENV)/bin/python -m pip --version >/dev/null 2>&1 \
		|| { rm -rf $(BUGSINK_VENV) && $(PYTHON) -m venv $(BUGSINK_VENV); }
	$(BUGSINK_VENV)/bin/python -m pip install -q bugsink==2.6.2
	touch $@

bugsink-venv: $(BUGSINK_VENV)/.installed

# The main job: a real crash through the real pipeline on this machine (root): the
# notification and the detail window are saved in demo-output/.
demo: setup
	$(VENV)/bin/drkonqi-lite demo --output demo-output

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check collector drkonqi_lite

typecheck: $(STAMP)
	mkdir -p build/mypy && ln -sfn ../../collector build/mypy/drkonqi_lite_collector
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests benchmarks scripts/demo_crashes.py

# Everything: lint, types, unit, Qt and integration tests against the real components.
test: setup bugsink-venv lint typecheck
	$(PYTEST) -q -p no:cacheprovider -ra tests

unit: $(STAMP)
	$(PYTEST) -q tests/unit

# The Debian package (build/deb/drkonqi-lite_VERSION_ARCH.deb); tests/packaging/test_deb.py
# installs it when DRKONQI_LITE_DEB names it (.ci/run does).
deb: deps
	scripts/build-deb

bench: $(STAMP)
	$(PY) benchmarks/collector.py

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
