"""``python -m ops.dashboards``: regenerates the Grafana dashboards (ops/dashboards/*.json and the chart's copies)."""

from . import write

for path in write():
    print(path)
