# The two set-up commands of the README: `make run` and `make test`.
.PHONY: run test quick

run:
	@scripts/run.sh

test:
	@scripts/bootstrap.sh test
	.venv/bin/ivr validate flows
	.venv/bin/ivr test flows
	scripts/test.sh

# the fast loop while editing: leaves out the slow tiers (real Asterisk, browser)
quick:
	.venv/bin/python -m pytest -q -m "not asterisk and not browser and not soak"
