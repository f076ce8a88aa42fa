"""End-to-end tests with the real Asterisk 22 test bed (marked `asterisk`, the slow tier)."""
