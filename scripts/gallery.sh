#!/usr/bin/env bash
# Regenerates the README's phenomenon gallery (docs/img/gallery/) from the scenario
# library: each picture is one of the plots the scenario's own command writes.
# Usage: scripts/gallery.sh        (builds memsim --release first; ~2 min of runs)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
memsim=target/release/memsim
gallery=docs/img/gallery
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$gallery"

# scenario -> the plot of `memsim run` that shows its phenomenon
run_plot() {
    local name=$1 plot=$2 file=${3:-scenarios/$1.yaml}
    "$memsim" run "$file" --out "$work/$name" >/dev/null
    cp "$work/$name/$plot" "$gallery/$name.png"
    echo "$gallery/$name.png  <- memsim run $file ($plot)"
}

for name in idle-give-back pressure-chain shares left-alone memory-panel over-inflated \
    lab-e3-limit-cycle squeeze-to-oom fpr-dead-zone; do
    run_plot "$name" balloons.png
done
run_plot zfs-arc host_memory.png
for name in hugepages-vs-thp ksm-clones-vs-mixed ksm-boot-merge-cow ksmtuned-threshold; do
    run_plot "$name" ksm.png
done

# Variants the scenario comments describe.
sed -e 's/^name: fpr-dead-zone$/name: fpr-dead-zone with free_page_reporting/' \
    -e 's/^    shares: \(.*\)$/    shares: \1\n    free_page_reporting: true/' \
    scenarios/fpr-dead-zone.yaml >"$work/fpr-on.yaml"
run_plot fpr-dead-zone-reporting balloons.png "$work/fpr-on.yaml"
sed 's/^ksmtuned: proxmox-1.4/ksmtuned: debian/' scenarios/ksmtuned-mawk.yaml >"$work/mawk-debian.yaml"
run_plot ksmtuned-mawk ksm.png "$work/mawk-debian.yaml"

# The two phenomena with their own commands.
"$memsim" compare scenarios/balloon-plus-ksm.yaml --policies none,balloon,ksm,both \
    --out "$work/balloon-plus-ksm" >/dev/null
cp "$work/balloon-plus-ksm/compare_host_memory.png" "$gallery/balloon-plus-ksm.png"
echo "$gallery/balloon-plus-ksm.png  <- memsim compare (compare_host_memory.png)"
"$memsim" side-channel scenarios/ksm-side-channel.yaml --out "$work/side-channel" >/dev/null
cp "$work/side-channel/side_channel.png" "$gallery/ksm-side-channel.png"
echo "$gallery/ksm-side-channel.png  <- memsim side-channel (side_channel.png)"
