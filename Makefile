# Entry points for people and CI. `demo` and `test` need root (prefix sudo when not root):
# they install OS packages through `setup` and load real BPF programs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench clean distclean

# Then `doctor` (as root) saves this kernel's tracepoint formats for bpfrun without root
# (tracefs is root-only): only its line about that is shown.
setup:
	@bash scripts/setup.sh
	@$(VENV)/bin/bpfrun doctor | grep -F '] kernel cache:' || true

# Exit 1 from `bpfrun run` means "ran, a threshold fired": a successful demo, not a failure
# (but a crash exits 1 too, so the report must exist).
demo: setup
	@rm -rf reports/demo; status=0; \
	$(VENV)/bin/bpfrun run syscalls --duration 5s -o reports/demo || status=$$?; \
	if [ "$$status" -gt 1 ] || [ ! -f reports/demo/report.md ]; then exit "$$((status ? status : 1))"; fi; \
	echo "demo report: $(CURDIR)/reports/demo/report.md"

# In CI a machine that cannot run BPF must fail the bpf-marked tests, never skip them.
test: setup lint
	@if [ "$${CI:-}" = true ]; then export BPFRUN_REQUIRE_BPF=1; fi; \
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check bpfrun tests
	$(VENV)/bin/mypy bpfrun

# Overhead of bpfrun's programs vs BCC and bpftrace (root); writes bench/RESULTS.md.
# `make bench BENCH_ARGS=--quick` for the ~5-minute version. Setup adds bpftrace here.
bench:
	@BPFRUN_WITH_BPFTRACE=1 bash scripts/setup.sh
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf reports tests/workloads/build .pytest_cache .mypy_cache .ruff_cache dist build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# Also drops the venv; the next `make setup` rebuilds it.
distclean: clean
	rm -rf $(VENV)
