# visrec — common entry points. Services: see deploy/services.sh.
SHELL := /bin/bash
GO    ?= go

.PHONY: demo test bench services-up services-down services-status

demo:
	$(GO) run ./cmd/visrec demo

# Starts (or reuses) the real Redis and Kafka, then runs every test against them.
test: services-up
	eval "$$(deploy/services.sh env)" && $(GO) test -count=1 -timeout 60m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

services-up:
	deploy/services.sh up

services-down:
	deploy/services.sh down

services-status:
	deploy/services.sh status
