#!/usr/bin/env bash
# Runs the cargo-fuzz targets by hand (not part of tests/run: see fuzz/README.md for the cost).
#
#   fuzz/run.sh                 every target for 60 s
#   fuzz/run.sh 5               every target for 5 s
#   fuzz/run.sh 300 odata_page  one target for 5 minutes
#
# Installs cargo-fuzz into .tools/cargo-fuzz once (~2 min). Builds on the stable toolchain with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags), without a sanitizer (the code under
# test is safe Rust: panics are what we look for) and with debug assertions (overflow checks on).
# A crash stops that target and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" = 0 ]; then
  targets=(odata_page comfnd_xml enet_token metadata_xml salesforce_responses monday_responses config_toml mapping)
fi

tools="$root/.tools/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz into .tools/cargo-fuzz (once)"
  cargo install --root "$tools" cargo-fuzz --locked
fi
export PATH="$tools/bin:$PATH" RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --debug-assertions)

echo "== cargo fuzz build"
cargo fuzz build "${flags[@]}"

failed=()
for t in "${targets[@]}"; do
  echo "== $t for ${secs}s"
  # Committed seeds and crash inputs are in fuzz/corpus/$t; libFuzzer adds its finds there too
  # (git-ignored). -timeout: one input taking over 10 s counts as a hang.
  if ! cargo fuzz run "${flags[@]}" "$t" -- -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
      2> >(grep -aE 'Done [0-9]+ runs|stat::number_of_executed_units|panicked|SUMMARY|Test unit written' >&2); then
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" != 0 ]; then
  echo "== crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "== no crash"
