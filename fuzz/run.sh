#!/usr/bin/env bash
# Builds and runs the libFuzzer target on stable Rust, without cargo-fuzz (which
# needs nightly for its sanitizer flags): the coverage instrumentation cargo-fuzz
# uses is made of stable codegen options. No AddressSanitizer (that one is
# nightly-only); Rust's own bounds and overflow checks stay on.
#
# usage: fuzz/run.sh [SECONDS]        (default 60; crashes land in fuzz/artifacts/)
set -euo pipefail
cd "$(dirname "$0")"
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps these flags off build scripts and proc macros.
cargo build --release --target "$target" --bin pipeline
mkdir -p corpus/pipeline artifacts/pipeline
# Seed with the fixture corpus.
find ../fixtures/cases -name '*.eml' -exec cp -n {} corpus/pipeline/ \;
"target/$target/release/pipeline" corpus/pipeline \
    -artifact_prefix=artifacts/pipeline/ -max_len=65536 -rss_limit_mb=2048 \
    -max_total_time="${1:-60}" -print_final_stats=1
