#!/usr/bin/env bash
# The benchmark of docs/packs.md: polis's resolution + evaluation of a
# 200-run, 2,000-step repository (release build, warm), beside the obvious
# shell script doing the same checks (find, test -f, test -x, grep) on the
# same files. Prints both figures; record them in BENCHMARKS.md.
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo run --quiet --release -p polis-packs --example eval_bench -- "$dir/repo"

sections=("Context" "Risk Assessment" "Security Considerations" "Sub-tasks" "Verification" "Rollback" "Audit Notes" "Definition of Done")
check_repo() {
  local repo=$1 count=0
  for c in test lint typecheck build security; do
    f="$repo/scripts/ci/$c.sh"
    if [ ! -e "$f" ]; then count=$((count+1)); elif [ ! -x "$f" ]; then count=$((count+1)); fi
  done
  for run in "$repo"/.protocols/*/; do
    for f in plan.md context.md log.md; do [ -f "$run$f" ] || count=$((count+1)); done
    while IFS= read -r step; do
      for s in "${sections[@]}"; do
        grep -qiE "^ {0,3}#{1,6}[[:space:]]+${s}:?[[:space:]]*$" "$step" || count=$((count+1))
      done
    done < <(find "$run" -maxdepth 1 -type f -name '[0-9][0-9]*-*.md')
  done
  echo "$count"
}
check_repo "$dir/repo" > /dev/null   # warm the page cache
start=$(date +%s%N)
n=$(check_repo "$dir/repo")
end=$(date +%s%N)
echo "shell (find, test, grep): $n findings (without clarifications) in $(( (end-start)/1000000 )) ms"
