# Dais: `make run` serves the demo conference; `make test` runs the whole suite.
VENV := .venv
PY := $(VENV)/bin/python
# Reinstalled (and the C fan-out rebuilt) whenever the packaging, the lock file or the C source
# changes.
BUILD_INPUTS := pyproject.toml setup.py requirements.lock streaming/_fanout.c
STAMP := $(VENV)/.installed-$(shell cat $(BUILD_INPUTS) | sha1sum | cut -c1-12)

.PHONY: run test install lock services browsers

run: install
	$(VENV)/bin/dais serve --demo

test: install services browsers
	$(VENV)/bin/pytest

install: $(STAMP)

$(STAMP): $(BUILD_INPUTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

# Every dependency of '.[test]', transitively, with its hashes: what `install` installs (pip and
# setuptools too: setuptools builds the C fan-out, without build isolation, so from the lock). Run
# after changing a pin in pyproject.toml (tests/app/test_dependencies.py fails until then); not a
# prerequisite of `install`, which installs the lock as committed.
lock: install
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links --extra test -o requirements.lock pyproject.toml

# PostgreSQL and Redis for the tests, started if they are not running.
services:
	.ci/services

# The browser tests drive Debian's Chromium (through Playwright) and Firefox ESR (through Marionette);
# tests/app/test_nginx.py runs Debian's nginx in front of Dais (docs/nginx.conf);
# tests/browser/test_slow_links.py caps an attendee's link with iproute2's ip and tc.
browsers:
	@test -x /usr/bin/chromium -a -x /usr/bin/firefox-esr -a -x /usr/sbin/nginx -a -x /usr/sbin/tc || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium firefox-esr nginx iproute2)
