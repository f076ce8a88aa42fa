"""YAML files with line marks, and findings about them (file:line:col, did-you-mean).

Shared by the flow format and config.yaml; it knows neither.
"""
