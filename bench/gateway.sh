#!/usr/bin/env bash
# Gateway benchmark: `ward gateway` (JWT + DPoP + scope + schema + rate
# limits, access log on) against nginx as a plain reverse proxy, in front of
# the same upstream, same client, 64 keep-alive connections, in one run.
# Results: bench/results/gateway.{md,json}. See bench/README.md.
#
#   bench/gateway.sh                         # defaults: 2 s warm-up + 10 s per target, then paced runs
#   PERF=0 bench/gateway.sh                  # skip the profiled gateway run
#   bench/gateway.sh --clients 32 --duration-secs 5   # extra flags go to ward-bench-gateway
#
# Installs nginx (and linux-perf for the profile) with apt-get if missing.
# Honours CARGO_TARGET_DIR. Loopback only; every run is time-bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ "${PERF:-1}" == 1 ]] && ! command -v perf >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf || echo "linux-perf not installable; no profile" >&2
fi

cargo build --release -p ward -p ward-bench

extra=()
if [[ "${PERF:-1}" == 1 ]] && command -v perf >/dev/null 2>&1; then
  extra=(--perf-out "$target/perf-gateway.data")
fi
exec timeout 600 "$target/release/ward-bench-gateway" \
  --ward-bin "$target/release/ward" \
  --nginx-bin "$nginx_bin" \
  --matrix examples/matrix.yaml \
  --schema examples/contracts/search.json \
  --out-dir bench/results \
  --reproduce "bench/gateway.sh${*:+ $*}" \
  "${extra[@]}" "$@"
