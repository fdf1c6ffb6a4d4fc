#!/bin/bash
# Runs a REAL ksmtuned script against a trace and prints the sysfs values it leaves
# after each monitor cycle, in the format of `memsim replay ksmtuned`.
#
#   ksmtuned_driver.sh SCRIPT AWK "RUN PAGES SLEEP" [CONF] < trace > expected
#
# SCRIPT  an unmodified upstream ksmtuned script (see ksmtuned_scripts.sh)
# AWK     the awk binary the script's `awk` calls run (mawk or gawk)
# BOOT    the sysfs values before the daemon starts (run, pages_to_scan, sleep_millisecs)
# CONF    optional ksmtuned.conf, sourced by the script as /etc/ksmtuned.conf would be
#
# The trace has one `total_kib free_kib committed_kib` line per monitor cycle (blank
# lines and `#` comments are skipped; every other line must be valid). Nothing of the
# real host is touched: the script runs on a copy whose absolute paths
# /proc/meminfo, /sys/kernel/mm/ksm/ and /etc/ksmtuned.conf are rewritten to a
# scratch directory; `sleep`, `ps`, `pgrep`, `touch` and `awk` are shims in PATH:
#
# * `sleep` is the clock: call k (the k-th monitor interval) first lets the driver
#   record the sysfs files left by cycle k-1, then waits until the driver has written
#   /proc/meminfo (MemTotal, MemFree+Buffers+Cached split over the three, plus lines
#   the script must not match) and the QEMU processes for cycle k.
# * `ps` / `pgrep` list up to three fake QEMU processes whose column values sum to the
#   cycle's committed KiB (none when it is 0), with a header line unless the column
#   is given as `name=`, as procps does.
# * sysfs files are plain files here, so after each cycle the driver applies the
#   kernel's acceptance rule (kstrtouint: optional '+', decimal digits, <= 2^32-1)
#   and restores the previous value of a file whose new content the kernel would
#   have rejected with EINVAL.
#
# When the daemon's loop process is gone before a cycle ends (a fatal bash error),
# the remaining cycles print the values it left. When it never started (the PIDFILE
# could not be touched), every cycle prints BOOT.
set -u
script=$1
awk_bin=$2
read -r boot_run boot_pages boot_sleep <<<"$3"
conf=${4:-}

work=$(mktemp -d /tmp/ksmtuned-driver.XXXXXX)
trap 'rm -rf "$work"' EXIT
fake=$work/fake bin=$work/bin
mkdir -p "$fake/ksm" "$bin"
mkfifo "$work/ev" "$work/go"

sed -e "s|/proc/meminfo|$fake/meminfo|g" \
    -e "s|/sys/kernel/mm/ksm/|$fake/ksm/|g" \
    -e "s|/etc/ksmtuned.conf|$fake/ksmtuned.conf|g" "$script" >"$work/ksmtuned"
[ -n "$conf" ] && cp "$conf" "$fake/ksmtuned.conf"
echo "$boot_run" >"$fake/ksm/run"
echo "$boot_pages" >"$fake/ksm/pages_to_scan"
echo "$boot_sleep" >"$fake/ksm/sleep_millisecs"
kernel_run=$boot_run kernel_pages=$boot_pages kernel_sleep=$boot_sleep

cat >"$bin/awk" <<SHIM
#!/bin/bash
exec "$awk_bin" "\$@"
SHIM
cat >"$bin/touch" <<SHIM
#!/bin/bash
/usr/bin/touch "\$@"; rc=\$?
[ \$rc -eq 0 ] && printf '%s\n' "\$1" >"$work/pidfile"
exit \$rc
SHIM
# sleep: report to the driver, then wait for its answer ("go" or "stop")
cat >"$bin/sleep" <<SHIM
#!/bin/bash
echo "\$PPID \$*" >"$work/ev"
read -r answer <"$work/go"
[ "\$answer" = go ] && exit 0
kill -TERM \$PPID
exit 1
SHIM
cat >"$bin/pgrep" <<SHIM
#!/bin/bash
[ -s "$work/procs" ] || exit 1
n=\$(wc -l <"$work/procs")
seq -s ' ' 4101 \$((4100 + n))
SHIM
cat >"$bin/ps" <<SHIM
#!/bin/bash
col=
while [ \$# -gt 0 ]; do
    case \$1 in -o) col=\$2; shift ;; esac
    shift
done
case \$col in *=) ;; *) printf '%6s\n' "\${col^^}" ;; esac
[ -s "$work/procs" ] && while read -r v; do printf '%10s\n' "\$v"; done <"$work/procs"
exit 0
SHIM
chmod +x "$bin"/*

set_cycle() { # total free committed
    local t=$1 f=$2 c=$3 a b
    a=$((f / 2)) b=$((f / 8))
    printf 'MemTotal:       %s kB\nMemFree:        %s kB\nMemAvailable:   %s kB\nBuffers:        %s kB\nCached:         %s kB\nSwapCached:     4242 kB\nActive:         1000 kB\nSReclaimable:   777 kB\n' \
        "$t" "$a" "$f" "$b" "$((f - a - b))" >"$fake/meminfo"
    : >"$work/procs"
    if [ "$c" != 0 ]; then
        if [ "$c" -ge 3 ]; then
            a=$((c / 3))
            printf '%s\n%s\n%s\n' "$a" "$a" "$((c - 2 * a))" >"$work/procs"
        else
            echo "$c" >"$work/procs"
        fi
    fi
}

# what the kernel keeps of a write (kstrtouint)
accept() { # file var
    local v
    v=$(cat "$fake/ksm/$1")
    if [[ $v =~ ^\+?0*([0-9]{1,10})$ ]] && [ "${BASH_REMATCH[1]}" -le 4294967295 ]; then
        printf -v "$2" '%s' "$((10#${BASH_REMATCH[1]}))"
    fi
    echo "${!2}" >"$fake/ksm/$1"
}
snapshot() {
    accept run kernel_run
    accept pages_to_scan kernel_pages
    accept sleep_millisecs kernel_sleep
}

alive() { # pid: running and not a zombie
    [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat"
}

mapfile -t cycles < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$')
[ ${#cycles[@]} -eq 0 ] && exit 0
read -r t f c <<<"${cycles[0]}"
set_cycle "$t" "$f" "$c"

exec 3<>"$work/ev" 4<>"$work/go"
PIDFILE=$work/ksmtune.pid PATH="$bin:$PATH" bash "$work/ksmtuned" </dev/null >"$work/log" 2>&1
loop=
if [ -s "$work/pidfile" ]; then
    loop=$(cat "$(cat "$work/pidfile")")
fi

k=0 state=running
[ -z "$loop" ] && state=dead
while [ $k -le ${#cycles[@]} ]; do
    if [ $state = running ]; then
        got=
        while ! read -r -t 0.05 -u 3 got; do
            alive "$loop" || { state=dead; break; }
        done
    fi
    if [ $k -gt 0 ]; then
        snapshot
        echo "$kernel_run $kernel_pages $kernel_sleep"
    fi
    k=$((k + 1))
    if [ $k -le ${#cycles[@]} ] && [ $state = running ]; then
        read -r t f c <<<"${cycles[k - 1]}"
        set_cycle "$t" "$f" "$c"
        echo go >&4
    fi
done
[ $state = running ] && echo stop >&4
if [ -n "$loop" ]; then
    for _ in $(seq 100); do alive "$loop" || break; /usr/bin/sleep 0.02; done
fi
if [ -n "${KSMTUNED_DRIVER_LOG:-}" ]; then cat "$work/log" >>"$KSMTUNED_DRIVER_LOG"; fi
exit 0
