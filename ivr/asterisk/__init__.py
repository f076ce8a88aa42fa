"""Asterisk beside the engine: the AMI client (queue events, call-backs, recording mutes)."""
