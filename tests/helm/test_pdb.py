"""templates/pdb.yaml: one PodDisruptionBudget per worker group."""

from __future__ import annotations

from .conftest import find, one, ray_pods, render


def test_one_budget_per_worker_group_selecting_its_pods():
    docs = render()
    budgets = find(docs, "PodDisruptionBudget")
    pods = ray_pods(docs)
    assert len(budgets) == 2
    for budget, group in zip(budgets, ("gpu", "cpu")):
        assert budget["spec"]["maxUnavailable"] == 1
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pods[group]["metadata"]["labels"].items()
        assert not selector.items() <= pods["head"]["metadata"]["labels"].items()


def test_toggle():
    assert not find(render("fixed"), "PodDisruptionBudget")
    assert one(render("default", "cpuWorkers.enabled=false", "gpuWorkers.hostsGateway=true"), "PodDisruptionBudget")
