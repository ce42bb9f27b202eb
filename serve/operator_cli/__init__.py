"""The operator CLI: operating a mistral-serve release on Kubernetes (``mistral-serve ops ...``).

Not to be confused with the top-level ``ops/`` (benchmarks, cluster tools, dashboards, alerts).

Everything goes through the Kubernetes API with the official client: the RayService custom
object (status, autoscaling bounds), pods (pending GPU workers), Secrets (the admin token), the
Ray dashboard's Serve API through the API server's service proxy (replicas per deployment), and
the platform's own ``/admin`` API through a port-forward to a serving pod (or a given URL).

- :mod:`serve.operator_cli.kube` connects and names things;
- :mod:`serve.operator_cli.status`, :mod:`serve.operator_cli.scale`, :mod:`serve.operator_cli.keys` do one job each;
- :mod:`serve.operator_cli.cli` registers the subcommands (``register(subparsers)``).
"""
