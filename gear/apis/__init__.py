"""High-level APIs: loading weights (and, later, the model zoo and sampling)."""
