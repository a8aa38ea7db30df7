"""Simulated routers for the tests: the ``sims`` fixture and the logins it uses."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import REPO
from rtxsim import Simulator

CONFIGS = REPO / "rtxsim" / "configs"
USER, PASSWORD, ADMIN = "admin", "login-pw", "admin-pw"


@pytest.fixture
def sims():
    """Start simulators (config file name or text, options); all stopped at the end."""
    started: list[Simulator] = []

    def start(config: str = "factory.txt", profile: str = "rtx1200", **options) -> Simulator:
        text = (CONFIGS / config).read_text() if config.endswith(".txt") else config
        options = {"user": USER, "password": PASSWORD, "admin_password": ADMIN, **options}
        sim = Simulator(text, profile=profile, **options)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
