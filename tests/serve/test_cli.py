"""The mistral-serve command line (commands that need no cluster)."""

from __future__ import annotations

import yaml

from serve.cli import main
from serve.config import AppConfig, load_config, packaged_config_path


def test_make_tiny_model_writes_a_loadable_checkpoint(tmp_path, capsys):
    target = tmp_path / "tiny"
    assert main(["make-tiny-model", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()


def test_ray_config_embeds_the_deployment_config(capsys):
    assert main(["ray-config", "--config", str(packaged_config_path("mistral-7b"))]) == 0
    ray_config = yaml.safe_load(capsys.readouterr().out)
    app = ray_config["applications"][0]
    assert app["import_path"] == "serve.app:build_app"
    embedded = AppConfig.model_validate(app["args"])
    expected = load_config(packaged_config_path("mistral-7b"))
    assert embedded.model == expected.model
    assert embedded.engine.model_dump(exclude={"deployment"}) == expected.engine.model_dump(exclude={"deployment"})
    # The deployment options travel in deployments[] (applied in place by Ray Serve).
    engine = {d["name"]: d for d in app["deployments"]}["Engine"]
    assert engine["ray_actor_options"]["num_gpus"] == expected.engine.deployment.num_gpus


def test_run_with_an_uncached_hub_model_offline_fails_fast_with_instructions(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), MISTRAL_SERVE_STATE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "serve.cli", "run", "--config", str(packaged_config_path("mistral-7b"))],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "not in the local Hugging Face cache" in done.stderr and "hf download" in done.stderr
    assert not (tmp_path / "local-stack.json").exists()  # nothing was started


def test_version_comes_from_the_package(capsys):
    import pytest

    import serve

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mistral-serve {serve.__version__}"


def test_config_validate_prints_one_line_per_problem(tmp_path, capsys):
    assert main(["config", "validate", str(packaged_config_path("local")), str(packaged_config_path("mistral-7b"))]) == 0
    assert capsys.readouterr().out.strip().endswith(": valid")
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine:\n  max_batch_sise: 2\n  deployment:\n    num_replicas: 0\n")
    assert main(["config", "validate", str(bad)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{bad}:2: engine.max_batch_sise: unknown field (did you mean max_batch_size?)",
        f"{bad}:4: engine.deployment.num_replicas: Input should be greater than or equal to 1 (got 0)",
    ]


def test_run_with_a_bad_config_prints_its_problems_and_starts_nothing(tmp_path):
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("cache:\n  ttl_s: soon\n")
    env = dict(os.environ, MISTRAL_SERVE_STATE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "serve.cli", "run", "--config", str(bad)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{bad}:2: cache.ttl_s: Input should be a valid integer, unable to parse string as an integer (got 'soon')"]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "local-stack.json").exists()
