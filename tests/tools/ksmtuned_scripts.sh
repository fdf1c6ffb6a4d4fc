#!/bin/bash
# Assembles the five real ksmtuned scripts that ksmtuned_driver.sh runs, into DIR,
# named after memsim's variants (proxmox, proxmox-1.4, fedora, debian,
# original-2010). Nothing of upstream is kept in this repository; this fetches and
# builds it locally:
#
#   ksmtuned_scripts.sh DIR PVE_KSM_CONTROL_DAEMON_CLONE KSMTUNED_CLONE KSMTUNED_DEB
#
# PVE_KSM_CONTROL_DAEMON_CLONE  git clone of Proxmox's ksm-control-daemon (needs
#                               commits 23493367 = 1.5-1 and 357a8e1 = 1.4-1)
# KSMTUNED_CLONE                git clone of github ksmtuned/ksmtuned (018d0ed)
# KSMTUNED_DEB                  Debian's package, e.g. from `apt-get download ksmtuned`
#                               (4.20150326+b1)
#
# The original is `ksmtuned` from ksm-control-scripts.org.tar.gz in the Proxmox
# repository; the Proxmox variants are it with that version's debian/patches/series
# applied to the script and its ksmtuned.conf (init-script.diff, which patches the
# init script only, is skipped);
# Fedora's is src/ksmtuned.sh.in with @SYSCONFDIR@ = /etc.
set -euo pipefail
out=$1 pve=$2 fedora=$3 deb=$4
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

git -C "$pve" show 23493367:ksm-control-scripts.org.tar.gz | tar -xz -C "$tmp"
orig=$tmp/ksm-control-scripts.org/ksmtuned
cp "$orig" "$out/original-2010"
for pair in 23493367:proxmox 357a8e1:proxmox-1.4; do
    rev=${pair%%:*} name=${pair#*:}
    mkdir -p "$tmp/$name"
    cp "$orig" "$orig.conf" "$tmp/$name/"
    for patch in $(git -C "$pve" show "$rev:debian/patches/series"); do
        [ "$patch" = init-script.diff ] && continue
        git -C "$pve" show "$rev:debian/patches/$patch" | patch -s -d "$tmp/$name" -p1
    done
    cp "$tmp/$name/ksmtuned" "$out/$name"
done
git -C "$fedora" show 018d0ed:src/ksmtuned.sh.in | sed 's|@SYSCONFDIR@|/etc|g' >"$out/fedora"
dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/sbin/ksmtuned >"$out/debian"
chmod +x "$out"/*
ls -l "$out"
