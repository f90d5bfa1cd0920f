"""Fixtures every test directory may use live in tests/support/fixtures.py."""

pytest_plugins = ["tests.support.fixtures"]
