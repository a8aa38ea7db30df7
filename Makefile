# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv lint test test-unit test-vm test-sim demo bench clean

$(VENV)/.installed: pyproject.toml
	@# Debian's python3 has no venv support until python3-venv is installed.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || $(PYTHON) -m lab.host_packages python3-venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Everything: unit tests, the RTX simulator over real SSH, the QEMU lab VM.
test: venv lint
	$(PY) -m lab.host_packages
	@# The nftables module runs on Debian 13 only (its default firewall); on Debian 12 the
	@# end-to-end module carries the home's traffic through the nftables backend.
	$(PY) -m pytest -v -ra --durations=25 --ignore=tests/test_vps_vm_nftables.py
	IPIP6_LAB_SUITE=trixie $(PY) -m pytest -v -ra --durations=10 tests/test_vps_vm_nftables.py

# The whole tunnel in a local lab: VM (the VPS) + RTX simulator (the router), deploy, traffic.
demo: venv
	$(PY) -m lab.demo

# What a run costs (not part of `make test`): routers on simulators, the VPS on the lab VM.
# Figures and the scaling plot go to bench/ (matplotlib from the bench extra, if it installs).
bench: venv
	$(PY) -m pip install --quiet -e '.[bench]' || echo "bench: no matplotlib, no plot"
	$(PY) -m lab.host_packages
	$(PY) -m lab.bench --vps

test-unit: venv
	$(PY) -m pytest -v -m "not vm and not sim"

test-sim: venv
	$(PY) -m pytest -v -m sim

test-vm: venv
	$(PY) -m lab.host_packages
	$(PY) -m pytest -v -m vm

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
