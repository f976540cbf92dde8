#!/usr/bin/env bash
# The obvious shell script for what `polis pack eval REPO --pack team-standard`
# checks, the baseline of the packs benchmark (benches/eval.rs, BENCHMARKS.md):
# find, test and grep over the same files, with team-standard's lists written
# out. Prints one line per finding code, `CODE COUNT`.
#
# It knows less than polis: no code fences (a `## Scope` inside one counts as
# a heading here), every step-like name in plan.md counts as a reference (polis
# takes only link targets and inline code), no size or UTF-8 checks. The
# generated repository has none of those cases, so both report the same counts
# there (tests/naive_check.rs).
set -euo pipefail
shopt -s nullglob
repo=${1:?usage: naive_check.sh REPO}

protocol_files=(plan.md context.md log.md)
sections=("Context" "Scope" "Sub-tasks" "Verification" "Rollback" "Observability" "Definition of Done")
checks=(scripts/ci/test.sh scripts/ci/lint.sh scripts/ci/typecheck.sh scripts/ci/build.sh)

check_missing=0 check_not_executable=0 missing_file=0 file_missing=0 missing_section=0

for check in "${checks[@]}"; do
  if [ ! -e "$repo/$check" ]; then
    check_missing=$((check_missing + 1))
  elif [ ! -f "$repo/$check" ] || [ ! -x "$repo/$check" ]; then
    check_not_executable=$((check_not_executable + 1))
  fi
done

for run in "$repo"/.protocols/*/; do
  [ -L "${run%/}" ] && continue
  for file in "${protocol_files[@]}"; do
    if [ ! -f "$run$file" ] || [ -L "$run$file" ]; then
      missing_file=$((missing_file + 1))
    fi
  done
  if [ -f "${run}plan.md" ]; then
    while IFS= read -r step; do
      [ -f "$run$step" ] || file_missing=$((file_missing + 1))
    done < <(grep -oE '[0-9]{2,}-[^][()`#/[:space:]]+\.md' "${run}plan.md" | sort -u)
  fi
  while IFS= read -r step; do
    for section in "${sections[@]}"; do
      grep -qiE "^ {0,3}#{1,6}[[:space:]]+${section}[[:space:]]*:?([[:space:]]+#+)?[[:space:]]*$" "$step" \
        || missing_section=$((missing_section + 1))
    done
  done < <(find "$run" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9]{2,}-[^/[:space:]]+\.md')
done

echo "policy.ci.required_check_missing $check_missing"
echo "policy.ci.required_check_not_executable $check_not_executable"
echo "policy.protocol.missing_file $missing_file"
echo "policy.step.file_missing $file_missing"
echo "policy.step.missing_section $missing_section"
