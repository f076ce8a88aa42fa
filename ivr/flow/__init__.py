"""The flow format: one module per node type (nodes/), the checks of a file and of a set of
files against config.yaml, and their compilation into immutable Flows."""
