"""Shared pytest configuration: fixture modules used across the suite."""

pytest_plugins = ["tests.kubeapi.fixtures", "tests.pgserver"]
