#!/usr/bin/env bash
# IaC checks for infra/template.yaml, run by tests/run (moto already started, .venv on PATH,
# MLC_TEST_AWS_ENDPOINT and AWS_* set):
#   1. cfn-lint: clean;
#   2. checkov on the translated template: every finding explained in the template's Metadata;
#   3. SAM -> CloudFormation (aws-sam-translator, offline), stack created in moto, every resource
#      verified through its own service's API (tests/iac/check_stack.py);
#   4. least-privilege IAM audit of every statement, with a self-test (tests/iac/check_iam.py).
# checkov runs from its own virtualenv (.tools/checkov-venv): it pins boto3 1.35, which must not
# downgrade the project venv that moto runs on. Installed once (~1 min), then reused.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
py="${root}/.venv/bin/python"
[ -x "$py" ] || py=python3
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in tests/iac/
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
: "${MLC_TEST_AWS_ENDPOINT:?MLC_TEST_AWS_ENDPOINT must point at moto (tests/run sets it)}"

step() { printf '\n== iac: %s\n' "$*"; }
elapsed() { echo "   ($(( $(date +%s) - $1 ))s)"; }

t=$(date +%s)
step "cfn-lint infra/template.yaml"
cfn-lint infra/template.yaml
echo "   clean"; elapsed "$t"

t=$(date +%s)
step "checkov (security scan of the translated template)"
ckv_venv="$root/.tools/checkov-venv"
ckv_req="$root/tests/iac/requirements-checkov.txt"
ckv_stamp="$ckv_venv/.installed-$(sha256sum "$ckv_req" | cut -c1-16)"
if [ ! -f "$ckv_stamp" ]; then
  echo "   installing checkov into .tools/checkov-venv (once)"
  rm -rf "$ckv_venv"
  python3 -m venv "$ckv_venv"
  "$ckv_venv/bin/pip" install --quiet --disable-pip-version-check -r "$ckv_req"
  touch "$ckv_stamp"
fi
"$py" tests/iac/run_checkov.py "$ckv_venv/bin/checkov"
elapsed "$t"

t=$(date +%s)
step "SAM -> CloudFormation -> moto stack, verified per service"
"$py" tests/iac/check_stack.py
elapsed "$t"

t=$(date +%s)
step "least-privilege IAM audit"
"$py" tests/iac/check_iam.py
elapsed "$t"
