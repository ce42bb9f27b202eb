"""Operating a mistral-serve release on Kubernetes (``mistral-serve ops ...``).

Everything goes through the Kubernetes API with the official client: the RayService custom
object (status, autoscaling bounds), pods (pending GPU workers), Secrets (the admin token), the
Ray dashboard's Serve API through the API server's service proxy (replicas per deployment), and
the platform's own ``/admin`` API through a port-forward to a serving pod (or a given URL).

- :mod:`serve.ops.kube` connects and names things;
- :mod:`serve.ops.status`, :mod:`serve.ops.scale`, :mod:`serve.ops.keys` do one job each;
- :mod:`serve.ops.cli` registers the subcommands (``register(subparsers)``).
"""
