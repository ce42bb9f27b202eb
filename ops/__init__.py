"""Operations tooling for mistral-serve: benchmarks and prepared GPU scripts."""
