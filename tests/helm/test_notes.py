"""templates/NOTES.txt: what helm prints after install."""

from __future__ import annotations

import shutil

import yaml

from .conftest import CHART, RELEASE, _render


def notes(tmp_path, *sets: str) -> str:
    # helm template never renders NOTES.txt: a copy of the chart renders it through `tpl`.
    chart = tmp_path / "mistral-serve"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "NOTES.txt")
    (chart / "templates" / "notes.yaml").write_text('notes: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}\n')
    return yaml.safe_load(_render((), tuple(sets), "templates/notes.yaml", str(chart)))["notes"]


def test_notes_tell_how_to_reach_and_operate_the_release(tmp_path):
    text = notes(tmp_path)
    assert f"RayService {RELEASE}-mistral-serve" in text
    assert f"port-forward svc/{RELEASE}-mistral-serve-api 8000:8000" in text
    assert f"mistral-serve ops keys --namespace serving --name {RELEASE}-mistral-serve create --team" in text
    assert "mistral-serve ops scale" in text and "--deployment engine --min 2 --max 8" in text
    assert "worker pods get 255s to terminate (preStop 120s + Serve graceful shutdown 120s + 15s)" in text


def test_notes_show_the_ingress_url_when_enabled(tmp_path):
    text = notes(tmp_path, "api.ingress.enabled=true", "api.ingress.host=llm.example.com", "api.ingress.tlsSecret=t")
    assert "https://llm.example.com/v1" in text


def test_notes_count_gpu_workers_over_every_pool(tmp_path):
    text = notes(tmp_path, "gpuWorkerGroups[0].groupName=l4", "gpuWorkerGroups[0].maxReplicas=8",
                 "gpuWorkerGroups[1].groupName=h100", "gpuWorkerGroups[1].minReplicas=0")
    assert "GPU workers 1-12)" in text
    assert "GPU workers 1-4)" in notes(tmp_path / "default")
