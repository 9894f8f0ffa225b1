#!/usr/bin/env bash
# The README's main job: spawn a demo session and show ps, logs and wait on it.
set -euo pipefail
orch=${1:-orch}
export ORCH_STATE_DIR=${ORCH_STATE_DIR:-/var/lib/orch-demo}
echo "+ orch spawn --name demo -- sh -c '...'" >&2
id=$("$orch" spawn --name demo --tag demo -- sh -c 'for i in 1 2 3; do echo "demo says $i"; sleep 1; done')
echo "$id"
echo "+ orch ps" >&2
"$orch" ps
echo "+ orch wait $id" >&2
"$orch" wait "$id" && echo "wait: exit 0 (ended successfully)" >&2
echo "+ orch logs $id" >&2
"$orch" logs "$id"
echo "+ orch show $id" >&2
"$orch" show "$id"
