"""Calls without a phone: simulated calls on the scripted channel with a virtual clock,
and the journey tests (`*.test.yaml`) built on them."""
