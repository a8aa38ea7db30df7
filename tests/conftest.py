pytest_plugins = ["lab.pytest_plugin", "tests.simulators"]
