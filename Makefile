# ringbridge: the two commands a person needs. The real work is in .ci/run (tests) and
# compose/up-local.sh (up).

.PHONY: test ci up images

# Every test, against the RabbitMQ and Redis already running (bash .ci/run starts them).
test:
	bash .ci/run test

# What CI runs: install and start RabbitMQ and Redis when absent, then every test.
ci:
	bash .ci/run

# Bring ringbridge up on this machine, with the testsystem's simulated PBX (Ctrl-C stops it).
up:
	bash compose/up-local.sh

# The service images, FROM scratch, on the local Docker Engine.
images:
	bash compose/build-images.sh
