"""values.yaml: a `# --` comment on every value, and the generated README and schema up to date."""

from __future__ import annotations

import json

import yaml

from ops import chart as chart_docs
from serve.config import AppConfig

from .conftest import CHART


def test_every_value_has_a_doc_comment():
    values = chart_docs.parse_values((CHART / "values.yaml").read_text())
    assert len(values) > 100
    undocumented = [v.path for v in values if v.leaf and not v.description]
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


def test_keys_are_camel_case_outside_free_form_blocks():
    for value in chart_docs.parse_values((CHART / "values.yaml").read_text()):
        for part in value.path.split("."):
            assert "_" not in part, value.path


def test_readme_is_generated_from_the_values():
    assert (CHART / "README.md").read_text() == chart_docs.readme(), "regenerate: python -m ops.chart"


def test_values_schema_is_generated():
    assert (CHART / "values.schema.json").read_text() == chart_docs.schema_text(), "regenerate: python -m ops.chart"


def _fields(model, prefix=""):
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = [a for a in inner if hasattr(a, "model_fields")]
        if nested:
            yield from _fields(nested[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_the_serve_block_exposes_every_deployment_option():
    """A new field in serve/config.py must get a documented chart value."""
    serve = yaml.safe_load((CHART / "values.yaml").read_text())["serve"]
    missing = []
    for path in _fields(AppConfig):
        if path.startswith("http."):
            continue  # the chart sets http_options itself
        node = serve
        for part in path.split("."):
            key = chart_docs.camel(part)
            if not isinstance(node, dict) or key not in node:
                missing.append(path)
                break
            node = node[key]
    assert not missing, f"add these to values.yaml's serve block (camelCase): {missing}"


def test_schema_describes_serve_from_the_config_descriptions():
    schema = json.loads((CHART / "values.schema.json").read_text())
    engine = schema["properties"]["serve"]["properties"]["engine"]["properties"]
    assert engine["maxBatchSize"]["description"] == AppConfig.model_fields["engine"].default_factory().model_fields[
        "max_batch_size"].description
    assert engine["device"]["enum"] == ["auto", "cpu", "cuda"]
