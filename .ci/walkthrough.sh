#!/usr/bin/env bash
# The README's walkthrough ("Try it without a controller"), run as written: the `sh` block
# after the `<!-- walkthrough` marker runs in bash from the repository root, and its output
# must equal the `text` block after it, less the fake's own "miso: fake controller at …"
# line (its port changes). Bounded: the block gets WALKTHROUGH_TIMEOUT seconds (default
# 120); whatever it started is killed afterwards, passing or not.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${WALKTHROUGH_TIMEOUT:-120}
work=$(mktemp -d)
# The n-th fenced block after the marker, without its fences.
block() {
  awk -v n="$1" '
    /^<!-- walkthrough/ { found = 1; next }
    found && /^```/ { if (inside) { inside = 0; if (++seen == n) exit } else inside = 1; next }
    found && inside && seen == n - 1 { print }
  ' README.md
}
block 1 >"$work/walkthrough.sh"
block 2 >"$work/expected"
if ! [ -s "$work/walkthrough.sh" ] || ! [ -s "$work/expected" ]; then
  echo "walkthrough: the README's walkthrough blocks were not found" >&2
  exit 1
fi
if [ -e fake.env ]; then
  echo "walkthrough: fake.env exists already; the walkthrough writes it" >&2
  exit 1
fi

# Built here, outside the time bound; the block's own `cargo build` then has nothing to do.
cargo build --quiet --features cli,testing

# Job control gives the block a process group of its own, so the clean-up reaches the fake
# even when the block did not get as far as killing it.
set -m
bash "$work/walkthrough.sh" >"$work/output" 2>&1 </dev/null &
group=$!
set +m
cleanup() {
  kill -TERM -- "-$group" 2>/dev/null || true
  rm -rf "$work" fake.env
}
trap cleanup EXIT

deadline=$((SECONDS + limit))
while kill -0 "$group" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.2
done
if kill -0 "$group" 2>/dev/null; then
  echo "walkthrough: still running after ${limit}s; its output so far:" >&2
  cat "$work/output" >&2
  exit 1
fi
status=0
wait "$group" || status=$?

grep -v '^miso: fake controller at ' "$work/output" >"$work/actual" || true
if [ "$status" -ne 0 ] || ! diff -u "$work/expected" "$work/actual"; then
  echo "walkthrough: the README's block exited $status or printed other than the README says" >&2
  exit 1
fi
if [ -e fake.env ]; then
  echo "walkthrough: the block left fake.env behind" >&2
  exit 1
fi
echo "walkthrough: ok (exit codes 0, 1, 2 as the README says)"
