#!/usr/bin/env bash
# Makes a state.db with the l3af binaries in $bin: every revision kind this release writes.
set -euo pipefail
bin=${bin:-/work/main/.build/debug}
src=/work/main/registry
work=$(mktemp -d /tmp/l3af-fx.XXXXXX)
port=l3fx$$; peer=l3fxp$$
pins=/sys/fs/bpf/l3af-fx-$$
cleanup() { kill ${registry_pid:-} 2>/dev/null || true; ip link del $port 2>/dev/null || true; rm -rf "$pins"; }
trap cleanup EXIT
key=$($bin/l3af-registry keygen --out "$work/registry.key" | tail -1)
token=$($bin/l3af-registry token add --root "$work/data" --owner netops --packages '*' | tail -1)
$bin/l3af-registry serve --root "$work/data" --key "$work/registry.key" --listen 127.0.0.1:0 --log-level warning > "$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/registry.log" && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/registry.log" | head -1)
export L3AF_REGISTRY=$url L3AF_TOKEN=$token L3AF_TRUSTED_KEYS=$key L3AF_REPO=$work/repo L3AF_CACHE=$work/cache L3AF_STATE=$work/state L3AF_PIN_ROOT=$pins
mkdir -p "$work/dist"
for package in xdp-root packet-counter; do $bin/l3af pack $src/$package -o "$work/dist" >/dev/null; $bin/l3af publish "$work/dist/l3af_$package-1.0.0.tar.gz" >/dev/null; done
for version in 1.0.0 1.1.0; do
  mkdir -p "$work/src/rl-$version" && cp $src/ratelimiting/* "$work/src/rl-$version/"
  sed -i "s/\"version\": \"1.0.0\"/\"version\": \"$version\"/" "$work/src/rl-$version/l3af.json"
  $bin/l3af pack "$work/src/rl-$version" -o "$work/dist" >/dev/null
done
$bin/l3af publish "$work/dist/l3af_ratelimiting-1.0.0.tar.gz" >/dev/null
ip link add $port type veth peer name $peer; ip link set $port up; ip link set $peer up
$bin/l3af install ratelimiting@^1 --iface $port --set rate=20 --set ports=8080
$bin/l3af publish "$work/dist/l3af_ratelimiting-1.1.0.tar.gz" >/dev/null
$bin/l3af upgrade ratelimiting
$bin/l3af pin ratelimiting@1.0.0
$bin/l3af install packet-counter --iface $port --hook xdp_ingress --seq 5
$bin/l3af rollback
$bin/l3af unpin ratelimiting
$bin/l3af pin ratelimiting@1.1.0 --iface $port
cat > $work/payload.json <<JSON
[{"host_name": "", "iface": "$port", "bpf_programs": {"xdp_ingress": [
  {"name": "packet-counter", "seq_id": 1, "version": "1.0.0", "admin_status": "disabled"},
  {"name": "ratelimiting", "seq_id": 2, "version": "1.1.0", "admin_status": "enabled", "start_args": {"rate": "30", "ports": "8080,443"},
   "monitor_maps": [{"name": "rl_drop_count_map", "key": 0, "aggregator": "scalar"}]}]}}]
JSON
$bin/l3af apply $work/payload.json --add
$bin/l3af rollback 3
$bin/l3af history
cp $work/state/state.db ${out:-/tmp/fx/state.db}
$bin/l3af remove ratelimiting --iface $port
