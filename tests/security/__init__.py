"""Black-box security tests against the running stack (docs/security.md)."""
