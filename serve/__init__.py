"""mistral-serve: OpenAI-compatible Mistral serving on Ray Serve."""
