#!/usr/bin/env bash
# Token-issuance benchmark: builds `ward` and `ward-bench` in release, then
# runs both proof modes (inline, presigned) at 1, 8, 32 and 64 clients plus
# the /healthz baseline. Results: bench/results/tokens-{inline,presigned}.{md,json}.
#
#   bench/run.sh                      # both modes, defaults
#   bench/run.sh presigned            # one mode
#   PERF=1 bench/run.sh presigned     # also profile the server (perf record -g)
#   bench/run.sh inline --duration-secs 5 --concurrency 32   # extra flags go to ward-bench
#
# Honours CARGO_TARGET_DIR. Needs only loopback; every run is time-bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -p ward -p ward-bench

# Inclusive (children) and self time of the server's hottest symbols.
summarize_perf() {
  echo "# perf record --call-graph dwarf -F 499 -p <ward serve> during a presigned run (see tokens-presigned.md)"
  echo "# Percentages are of the server's on-CPU samples; perf slows the server, so use them as shares, not rates."
  echo
  echo "## Inclusive time of selected frames"
  perf report -i "$1" --stdio --children --sort sym -g none --percent-limit 0.5 2>/dev/null \
    | grep -E '^ +[0-9]' | cut -c1-150 \
    | grep -E 'broker::token::|verify_proof|jws::verify|jws::sign|KeyRing::sign|decompress|decode_unverified|thumbprint|writer_loop|run_batch|append_audit|execute_batch|sqlite3WalFrames|sqlite3WalCheckpoint|full_fsync|sqlite3BtreeInsert|blocking::pool::spawn_blocking|ward_store::rows::agent|Value as core::fmt::Display|__x64_sys_futex|schedule$|_int_malloc|__GI___libc_free|writev|handle_connection::\{\{closure' \
    | awk '!seen[$NF]++' || true
  echo
  echo "## Self time, top 40"
  perf report -i "$1" --stdio --no-children --sort sym -g none 2>/dev/null \
    | grep -E '^ +[0-9]' | cut -c1-150 | head -40 || true
}

modes=(inline presigned)
if [[ $# -gt 0 && ( "$1" == inline || "$1" == presigned ) ]]; then
  modes=("$1")
  shift
fi

for mode in "${modes[@]}"; do
  extra=()
  if [[ "${PERF:-0}" == 1 && "$mode" == presigned ]]; then
    extra=(--perf-out "$target/perf-${mode}.data")
  fi
  "$target/release/ward-bench" \
    --ward-bin "$target/release/ward" \
    --matrix examples/matrix.yaml \
    --mode "$mode" \
    --out-dir bench/results \
    --reproduce "${extra[*]:+PERF=1 }bench/run.sh $mode${*:+ $*}" \
    "${extra[@]}" "$@"
  if [[ ${#extra[@]} -gt 0 ]]; then
    summarize_perf "$target/perf-${mode}.data" > "bench/results/perf-${mode}.txt"
  fi
done
