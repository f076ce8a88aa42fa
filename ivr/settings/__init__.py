"""The installation's settings: config.yaml with its departments, schedules, segments,
prompt, QA, web and Asterisk sections, each parsed once into typed settings."""
