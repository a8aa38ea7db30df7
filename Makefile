# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: venv lint test test-fast test-trixie test-unit test-vm test-sim demo bench clean

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

# Everything: unit tests, the RTX simulator over real SSH, the QEMU lab VM. The VM tests run in
# file order on one VM (booted once) while the rest runs beside them at the lowest CPU priority
# (lab/run_tests.py); the slowest tests are listed at the end of each part.
test: venv lint
	$(PY) -m lab.host_packages
	$(PY) -m lab.run_tests

# The inner loop: everything but the VM tests, on both cores (about 5 minutes).
test-fast: venv
	$(PY) -m pytest -n 2 -ra -m "not vm"

# The VPS and firewall modules on a Debian 13 VM (its own image and boot; `make test` runs only
# the nftables module there, after its Debian 12 run).
test-trixie: venv
	$(PY) -m lab.host_packages
	IPIP6_LAB_SUITE=trixie $(PY) -m pytest -ra --durations=10 tests/test_vps_vm.py \
		tests/test_vps_vm_firewall.py tests/test_vps_vm_nftables.py

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
