"""Notebook-first research-to-production kit for ML trading models

Modules:

- `autotrader.cli`: The `autotrader` command: run pipelines, list them, inspect settings, rebuild the reports index."""

__version__ = "0.1.0"
