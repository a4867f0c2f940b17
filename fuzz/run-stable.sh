#!/usr/bin/env bash
# Coverage-guided fuzzing without nightly: builds the targets with libFuzzer's coverage
# instrumentation (stable -C flags; no AddressSanitizer, which the codec does not need as
# it has no unsafe code) and runs each for a bounded time.
#
#   fuzz/run-stable.sh [seconds per target, default 60] [target...]
#
# New inputs go to fuzz/corpus/<target> (not committed); crashers to fuzz/artifacts/. A
# crasher is copied into crates/fastcgi/tests/corpus/<target>/ under the bug's name, with
# a regression test, so `cargo test` replays it forever.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(response cgi_head params)
host="$(rustc -vV | sed -n 's/^host: //p')"
# With an explicit --target, RUSTFLAGS reach the fuzzed code but not build scripts.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --target "$host" --target-dir target/stable-fuzz --bins
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" artifacts
    seeds=()
    [ -d "../crates/fastcgi/tests/corpus/$t" ] && seeds=("../crates/fastcgi/tests/corpus/$t")
    "target/stable-fuzz/$host/release/$t" -max_total_time="$secs" -max_len=8192 \
        -artifact_prefix="artifacts/$t-" "corpus/$t" "${seeds[@]}"
done
