"""`config validate`: one clear line per problem of a deployment file, with its line number."""

from __future__ import annotations

import pytest

from serve.config import packaged_config_path
from serve.config_check import ConfigError, config_problems, load_checked


def write(tmp_path, text: str):
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["local", "mistral-7b"])
def test_the_shipped_configs_are_valid(name):
    assert config_problems(packaged_config_path(name)) == []
    assert load_checked(packaged_config_path(name)).name == "mistral-serve"


def test_every_problem_gets_one_line_with_file_line_path_and_reason(tmp_path):
    path = write(tmp_path, """\
model:
  served_name: demo
engine:
  max_batch_sise: 8
  deployment:
    num_replicas: 0
    autoscaling:
      min_replicas: 3
      max_replicas: 2
cache:
  ttl_s: soon
""")
    assert config_problems(path) == [
        f"{path}:4: engine.max_batch_sise: unknown field (did you mean max_batch_size?)",
        f"{path}:6: engine.deployment.num_replicas: Input should be greater than or equal to 1 (got 0)",
        f"{path}:7: engine.deployment.autoscaling: min_replicas must not exceed max_replicas",
        f"{path}:11: cache.ttl_s: Input should be a valid integer, unable to parse string as an integer (got 'soon')",
    ]


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, "modle:\n  id: x\n")
    assert config_problems(path) == [f"{path}:1: modle: unknown field (did you mean model?)"]


def test_not_yaml_not_a_mapping_and_missing_file(tmp_path):
    broken = write(tmp_path, "model:\n  id: [unclosed\n")
    (line,) = config_problems(broken)
    assert line.startswith(f"{broken}:") and "not valid YAML" in line
    listed = tmp_path / "list.yaml"
    listed.write_text("- model\n")
    assert config_problems(listed) == [
        f"{listed}:1: expected a mapping of sections (model, engine, gateway, ...), got list"]
    missing = tmp_path / "nope.yaml"
    (line,) = config_problems(missing)
    assert line.startswith(f"{missing}: cannot read")


def test_load_checked_raises_with_all_problems(tmp_path):
    path = write(tmp_path, "tenancy:\n  default_rpm: -1\n  default_tpm: -2\n")
    with pytest.raises(ConfigError) as raised:
        load_checked(path)
    assert [p.split(": ")[1] for p in raised.value.problems] == ["tenancy.default_rpm", "tenancy.default_tpm"]
    assert "Traceback" not in str(raised.value)
