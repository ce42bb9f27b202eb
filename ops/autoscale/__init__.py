"""Autoscaling on a real multi-node cluster: a load ramp and the engine replicas it brings up and down.

``python -m ops.autoscale`` records the timeline (load, replicas per node, replica states) and
saves it as JSON and PNG; :mod:`ops.autoscale.record` is shared with ``tests/cluster``.
"""
