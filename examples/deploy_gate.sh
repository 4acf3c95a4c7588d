#!/bin/sh
# A deploy gate for a CI pipeline: ask a human, deploy only if they approve.
#
#   LOOPGATE_URL=http://127.0.0.1:8080 examples/deploy_gate.sh v2.1
#
# `loopgate ask` exits 0 when approved, 1 when not, 2 when nobody answered in
# time and 3 when the question was cancelled or could not be asked.
set -u
version="${1:-v2.1}"

loopgate ask "Deploy $version to production?" -o Deploy -o Hold \
    --session "${LOOPGATE_SESSION:-deploys}" --timeout "${GATE_TIMEOUT:-600}" \
    --metadata "version=$version" --metadata "pipeline=${CI_PIPELINE_ID:-local}"
status=$?

case $status in
    0) echo "approved: deploying $version" ;;  # ./deploy.sh "$version" goes here
    1) echo "not approved: $version stays where it is" ;;
    2) echo "nobody answered in time: not deploying $version" ;;
    *) echo "the gate could not decide (exit $status): not deploying $version" ;;
esac
exit $status
