"""Implementations of the engine's Channel protocol: scripted (tests), sim (console), agi (live)."""
