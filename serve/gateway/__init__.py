"""The OpenAI-compatible HTTP gateway: routes, the request pipeline, and its deployment."""
