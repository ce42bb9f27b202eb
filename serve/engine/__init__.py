"""The engine: a batching generation loop over a transformers causal LM, and its deployment."""
