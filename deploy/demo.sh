#!/bin/sh
# demo.sh: from a fresh clone to two running hello VMs in a private stack (`make demo`).
set -eu
cd "$(dirname "$0")/.."
DIR=${HUSK_DEMO_DIR:-/tmp/husk-demo}
STACK="deploy/husk-stack"

deploy/install-deps.sh
make -j2 all
make guest

$STACK up --dir "$DIR" --bin "$PWD/build/bin" --kit "$PWD/build/kit"
$STACK exec --dir "$DIR" -- husk apply -f deploy/examples/hello.yaml

echo "demo: waiting for both hello VMs to report ready..."
deadline=$(( $(date +%s) + 180 ))
while :; do
        status=$($STACK exec --dir "$DIR" -- husk deployment inspect hello -o json |
                /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["ready_replicas"])')
        [ "$status" = "running 2" ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "demo: hello is still '$status' after 180 s; daemon logs are in $DIR/logs" >&2
                exit 1
        fi
        sleep 0.5
done

$STACK exec --dir "$DIR" -- husk deployment list
echo
echo "A line the guest wrote on its console:"
grep -h "husk-agent: ready" "$DIR"/state/instances/*/console.log | head -n 1
echo
echo "The stack keeps running. Use it: $STACK exec --dir $DIR -- husk deployment list   Stop it: $STACK down --dir $DIR"
