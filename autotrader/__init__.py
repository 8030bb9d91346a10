"""Notebook-first research-to-production kit for ML trading models

Modules:

- `autotrader.cli`: The `autotrader` command: run pipelines, list them, inspect settings, rebuild the reports index.
- `autotrader.deploy.sequential`: The P&L check of a rollout as a sequential test with an always-valid error rate: paired per-bar P&L differences between the new version (served) and the champion (scored in shadow on the same bars), judged by a confidence sequence, so a clearly worse version is stopped as soon as that is significant, an equivalent one passes as soon as it is shown not to be worse, and the check says "inconclusive" — not "pass" — until then."""

__version__ = "0.1.0"
