"""A real multi-node Ray cluster on one machine, and the application deployed onto it.

``python -m ops.cluster up`` starts a head and worker nodes (``ray start`` processes; a custom
``fake_gpu`` resource stands in for GPUs so that placement is real), Redis, the tiny checkpoint,
deploys the application through the Serve REST API and serves until interrupted.
:mod:`ops.cluster.local` holds the pieces the tests, the autoscaling recorder and the soak share.
"""
