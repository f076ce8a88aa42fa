"""Developer tooling: the local Asterisk 22 test bed, SIPp callers and a blocking AMI
session for scripts and end-to-end tests. The live runtime never imports it."""
