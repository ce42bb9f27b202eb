"""Product-team access: API keys, per-team quotas and usage, all shared through Redis."""
