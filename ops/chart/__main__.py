"""``python -m ops.chart``: regenerates the chart's README.md and values.schema.json."""

from . import write

for path in write():
    print(path)
