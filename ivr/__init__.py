"""IVR engine: YAML menu trees compiled into call flows for customer-service phone lines."""

__version__ = "0.1.0"
