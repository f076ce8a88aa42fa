"""End-to-end tests with the real Asterisk 22 test bed (a package, so that its conftest.py
does not take the place of tests/conftest.py for modules that `from conftest import`)."""
