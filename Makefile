# The two set-up commands of the README: `make run` and `make test`.
.PHONY: run test quick

run:
	@scripts/bootstrap.sh run
	@.venv/bin/ivr validate flows
	@.venv/bin/ivr prompts build
	@# the local Asterisk 22 (built once into .cache/; reloaded if it runs)
	@.venv/bin/ivr testbed start
	@echo "The engine is starting. In another terminal, place a real call that presses 1 1:"
	@echo "    .venv/bin/ivr call 1 1"
	@echo "(or try a menu without a phone: .venv/bin/ivr simulate flows/main.yaml)"
	@IVR_AMI_SECRET="$${IVR_AMI_SECRET:-$$(cat .cache/testbed/ami.secret)}" .venv/bin/ivr serve

test:
	@scripts/bootstrap.sh test
	.venv/bin/ivr validate flows
	.venv/bin/ivr test flows
	.venv/bin/python -m pytest

# the fast loop while editing: leaves out the slow tiers (real Asterisk, browser)
quick:
	.venv/bin/python -m pytest -q -m "not asterisk and not browser"
