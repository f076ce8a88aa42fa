"""`ivr demo`: an installation filled with simulated calls and their recordings."""
