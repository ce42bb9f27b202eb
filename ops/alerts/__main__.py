"""``python -m ops.alerts``: regenerates the alert rules (ops/alerts/rules.yaml and the chart's copy)."""

from . import write

for path in write():
    print(path)
