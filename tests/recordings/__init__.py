"""Tests of `ivr.recordings`: the index of the recordings folder, retention, the commands."""
