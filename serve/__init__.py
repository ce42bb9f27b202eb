"""mistral-serve: OpenAI-compatible Mistral serving on Ray Serve."""

# NOTE: the one place the version is written: pyproject.toml reads it (setuptools dynamic
# version), and the CLI, the API and the chart's appVersion follow it.
__version__ = "0.1.0"
