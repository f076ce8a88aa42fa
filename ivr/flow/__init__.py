"""Flow files: loading with marks, checks, compilation into immutable Flows."""
