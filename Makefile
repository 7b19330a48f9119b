# ringbridge: the two commands a person needs. The real work is in .ci/run (tests) and, once
# compose/ exists, docker compose (up).

.PHONY: test ci up

# Every test, against the RabbitMQ and Redis already running (bash .ci/run starts them).
test:
	bash .ci/run test

# What CI runs: install and start RabbitMQ and Redis when absent, then every test.
ci:
	bash .ci/run

# Bring ringbridge up on this machine.
up:
	@echo "make up: not yet: see issue 8 (the compose files and images come with it)"; exit 1
