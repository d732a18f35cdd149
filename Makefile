# Two commands do everything on a fresh machine (Python 3.11+, no Docker):
#   make demo   - run the whole flow locally and print the XNAT URLs of the uploaded files
#   make test   - install everything and run every test (what .ci/run runs)
# Deploying: make build (sam build with CPython 3.12), then sam deploy --guided (README, "Deploy").
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The deployment tools live in venvs of their own: their dependency trees would fight requirements-dev.txt's pins.
TOOLS := $(VENV)/tools
SAM ?= $(TOOLS)/sam/bin/sam
CHECKOV ?= $(TOOLS)/checkov/bin/checkov
SAM_STAMP := $(TOOLS)/sam/.installed
CHECKOV_STAMP := $(TOOLS)/checkov/.installed
# The layer's wheels (this machine's and Lambda's aarch64 ones), so the build test runs sam build offline.
WHEELHOUSE := $(VENV)/wheelhouse
WHEELS_STAMP := $(WHEELHOUSE)/.complete
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install installed lint format build lock scan bench faults serve openapi clean

$(STAMP): requirements-dev.txt layers/xnat_upload/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_INSTALL) -r requirements-dev.txt
	$(BIN)/python $(PIP_INSTALL) --no-deps -e .
	touch $(STAMP)

$(TOOLS)/%/.installed: tools/requirements-%.txt
	rm -rf $(TOOLS)/$*
	$(PYTHON) -m venv $(TOOLS)/$*
	$(TOOLS)/$*/bin/python $(PIP_INSTALL) -r $<
	touch $@

# Written by the script only when the wheelhouse is complete; without a CPython 3.12 it says so and writes nothing
# (the build test is then skipped with that reason).
$(WHEELS_STAMP): layers/xnat_upload/requirements.lock tools/build.py
	$(PYTHON) -m tools.build prefetch --wheelhouse $(WHEELHOUSE)

# The four installs are independent: run them side by side (about as long as the slowest alone).
install:
	@$(MAKE) --no-print-directory -j4 --output-sync=target installed

installed: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) $(WHEELS_STAMP)
	@:

demo: $(STAMP)
	$(BIN)/python -m devserver.demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SAM_BIN=$(SAM) CHECKOV_BIN=$(CHECKOV) SAM_WHEELHOUSE=$(WHEELHOUSE) $(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# sam build into .aws-sam/build with CPython 3.12 first on PATH (PATH, then ~/.pyenv/versions/3.12*).
build: $(SAM_STAMP)
	$(PYTHON) -m tools.build build --sam $(SAM)

# After a change to layers/xnat_upload/requirements.txt: resolve it again into requirements.lock, with hashes.
lock:
	$(PYTHON) -m tools.build lock

# checkov's own report of the template (make test runs it too, in tests/deploy/test_security_scan.py).
scan: $(CHECKOV_STAMP)
	$(CHECKOV) -f template.yaml --framework cloudformation --skip-download --compact

# Both sections: the upload figures (bench.run), then the queue flow's (bench.queue); non-zero when a queue target is missed.
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.queue

faults: $(STAMP)
	$(BIN)/python -m bench.faults

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .aws-sam

# The local stack in one terminal; options through ARGS, e.g. make serve ARGS='--s3-port 4567' (make serve ARGS=--help).
serve: $(STAMP)
	$(BIN)/python -m devserver.serve $(ARGS)

openapi: $(STAMP)
	$(BIN)/python -m devserver.openapi
