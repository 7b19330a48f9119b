#!/usr/bin/env bash
# Brings ringbridge up on this machine as plain processes, with the testsystem's simulated PBX in
# place of a real Asterisk, and shows the calls as the gateway publishes them:
#
#   RabbitMQ + Redis (Debian packages, started by .ci/run when absent)
#   testsystem amisim   a simulated Asterisk on 127.0.0.1:15038 playing test calls in a loop
#   ami-gateway         following it, publishing call events (health: http://127.0.0.1:9101/readyz)
#   testsystem watch    printing every call event
#
# Ctrl-C stops everything. Logs are in run/. Until the Docker images and compose files land
# (issue 8), this is how `make up` runs the product.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"

mkdir -p bin run
echo "==> RabbitMQ and Redis"
bash .ci/run install >/dev/null
bash .ci/run services

echo "==> building"
go build -o bin/ ./ami-gateway ./testsystem

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> stopped"
}
trap cleanup INT TERM EXIT

echo "==> simulated PBX on 127.0.0.1:15038 playing testsystem/amisim/testdata/scenarios (log: run/amisim.log)"
bin/testsystem amisim --listen 127.0.0.1:15038 --user crm --secret demo-secret \
  --play testsystem/amisim/testdata/scenarios --loop --gap 2s >run/amisim.log 2>&1 &
pids+=($!)

echo "==> ami-gateway (log: run/ami-gateway.log, health: http://127.0.0.1:9101/readyz)"
bin/ami-gateway run --config compose/local/config.yaml >run/ami-gateway.log 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fs http://127.0.0.1:9101/readyz >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -s http://127.0.0.1:9101/readyz || true
echo
echo "==> call events as they are published (Ctrl-C to stop)"
bin/testsystem watch --pbx demo &
pids+=($!)
wait "${pids[@]}"
