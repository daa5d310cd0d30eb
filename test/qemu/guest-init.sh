#!/bin/sh
# /init of the vhostd QEMU test guest (busybox-static).  Packed into
# test/qemu/cache/initrd.gz by build-guest.sh.
#
# The job comes from the kernel command line:
#   vhtest=net  ip=10.0.0.1 peer=10.0.0.2 count=5 [need=N] [prefix=24] [interval=0.2]
#   vhtest=blk  [dev=/dev/vda] [offs=0,4096,...] [hostoff=BYTES hostlen=BYTES hostmd5=HEX]
#   vhtest=info (just report the virtio devices)
# It prints exactly one line `VHTEST-RESULT {json}` on the console, then powers off.
export PATH=/bin:/sbin
umask 022

mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp
exec </dev/console >/dev/console 2>&1

# ------------------------------------------------------------------ helpers
uptime_s() { cut -d' ' -f1 /proc/uptime; }
off() {
    sync
    poweroff -f
    echo o > /proc/sysrq-trigger
    sleep 5
}
# jstr VALUE -> JSON string (values here never hold quotes/backslashes, but be safe)
jstr() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n\r')"; }
jbool() { if [ "$1" = 1 ] || [ "$1" = true ]; then printf true; else printf false; fi; }
jnum() { case "$1" in ''|*[!0-9.-]*) printf null ;; *) printf '%s' "$1" ;; esac; }

ERR=""
fail() { [ -n "$ERR" ] || ERR="$*"; }

# ------------------------------------------------------------------ cmdline
JOB=info; IP=10.0.0.1; PEER=10.0.0.2; COUNT=5; NEED=""; PREFIX=24; INTERVAL=0.2
DEV=""; OFFS=""; HOSTOFF=""; HOSTLEN=4096; HOSTMD5=""; BS=4096
for w in $(cat /proc/cmdline); do
    case "$w" in
        vhtest=*)   JOB="${w#*=}" ;;
        ip=*)       IP="${w#*=}" ;;
        peer=*)     PEER="${w#*=}" ;;
        count=*)    COUNT="${w#*=}" ;;
        need=*)     NEED="${w#*=}" ;;
        prefix=*)   PREFIX="${w#*=}" ;;
        interval=*) INTERVAL="${w#*=}" ;;
        dev=*)      DEV="${w#*=}" ;;
        offs=*)     OFFS="${w#*=}" ;;
        hostoff=*)  HOSTOFF="${w#*=}" ;;
        hostlen=*)  HOSTLEN="${w#*=}" ;;
        hostmd5=*)  HOSTMD5="${w#*=}" ;;
    esac
done
[ -n "$NEED" ] || NEED="$COUNT"

echo "VHTEST-BOOTED uptime=$(uptime_s) job=$JOB"

# ------------------------------------------------------------------ modules
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$m" 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || fail "insmod $m: $(cat /tmp/insmod.err)"
    }
done < /etc/modules.order

# ------------------------------------------------------------------ virtio devices
# wait (up to 10 s) for the device kind the job needs: 0x0001 net, 0x0002 blk
want=""
case "$JOB" in net) want=0x0001 ;; blk) want=0x0002 ;; esac
find_dev() {  # find_dev ID -> first /sys/bus/virtio/devices/virtioN with that device id
    for d in /sys/bus/virtio/devices/virtio*; do
        [ -e "$d/device" ] || continue
        [ "$(cat "$d/device")" = "$1" ] && { echo "$d"; return 0; }
    done
    return 1
}
if [ -n "$want" ]; then
    i=0
    while ! find_dev "$want" >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    # and for its driver to bind (net/ or block/ directory)
    i=0
    while [ $i -lt 100 ]; do
        d="$(find_dev "$want")" || break
        [ -d "$d/net" ] || [ -d "$d/block" ] && break
        sleep 0.1; i=$((i+1))
    done
fi

# dev_json DIR -> {"name":..,"device_id":..,"pci":..,"features":..,"access_platform":..,"iommu_group":..}
dev_json() {
    d="$1"
    name="$(basename "$d")"
    id="$(cat "$d/device" 2>/dev/null)"
    feat="$(cat "$d/features" 2>/dev/null)"
    bit33="$(printf '%s' "$feat" | cut -c34)"
    pcidir="$(cd -P "$d/.." 2>/dev/null && pwd -P)"
    pci="$(basename "$pcidir")"
    grp=""
    if [ -e "$pcidir/iommu_group" ]; then grp="$(basename "$(readlink "$pcidir/iommu_group")")"; fi
    ifn=""; blk=""
    [ -d "$d/net" ] && ifn="$(ls "$d/net" | head -1)"
    [ -d "$d/block" ] && blk="$(ls "$d/block" | head -1)"
    printf '{"name":%s,"device_id":%s,"pci":%s,"features":%s,"access_platform":%s,"iommu_group":%s,"iommu_group_id":%s,"ifname":%s,"block":%s}' \
        "$(jstr "$name")" "$(jstr "$id")" "$(jstr "$pci")" "$(jstr "$feat")" \
        "$(jbool "$([ "$bit33" = 1 ] && echo 1)")" "$(jbool "$([ -n "$grp" ] && echo 1)")" \
        "$(if [ -n "$grp" ]; then jnum "$grp"; else printf null; fi)" "$(jstr "$ifn")" "$(jstr "$blk")"
}
DEVS=""
for d in /sys/bus/virtio/devices/virtio*; do
    [ -e "$d/device" ] || continue
    DEVS="${DEVS:+$DEVS,}$(dev_json "$d")"
done
MAIN=""
[ -n "$want" ] && MAIN="$(find_dev "$want")"
AP=0; GRP=0; FEAT=""
if [ -n "$MAIN" ]; then
    FEAT="$(cat "$MAIN/features")"
    [ "$(printf '%s' "$FEAT" | cut -c34)" = 1 ] && AP=1
    [ -e "$MAIN/../iommu_group" ] && GRP=1
elif [ -n "$want" ]; then
    fail "no virtio device with id $want"
fi
DMAR=0
[ -d /sys/class/iommu ] && [ -n "$(ls /sys/class/iommu 2>/dev/null)" ] && DMAR=1

EXTRA=""
OK=0

# ------------------------------------------------------------------ net
if [ "$JOB" = net ]; then
    IFN=""
    [ -n "$MAIN" ] && IFN="$(ls "$MAIN/net" 2>/dev/null | head -1)"
    SENT=0; RECV=0
    if [ -z "$IFN" ]; then
        fail "virtio-net device has no interface"
    else
        ip link set lo up
        ip link set "$IFN" up || fail "link up $IFN"
        ip addr add "$IP/$PREFIX" dev "$IFN" || fail "addr add $IP/$PREFIX"
        DEADLINE=$((COUNT * 2 + 10))
        timeout $((DEADLINE + 5)) ping -c "$COUNT" -i "$INTERVAL" -W 2 -w "$DEADLINE" "$PEER" > /tmp/ping.out 2>&1
        cat /tmp/ping.out
        SENT="$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)"
        RECV="$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)"
        [ -n "$SENT" ] || SENT=0
        [ -n "$RECV" ] || RECV=0
        [ "$RECV" -ge "$NEED" ] && [ "$RECV" -gt 0 ] && OK=1
        [ "$OK" = 1 ] || fail "ping $PEER: $RECV of $SENT replies (need $NEED)"
    fi
    st() { cat "/sys/class/net/$IFN/statistics/$1" 2>/dev/null || echo 0; }
    MAC="$(cat "/sys/class/net/$IFN/address" 2>/dev/null)"
    PEERMAC="$(ip neigh show "$PEER" 2>/dev/null | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')"
    EXTRA="\"ifname\":$(jstr "$IFN"),\"mac\":$(jstr "$MAC"),\"ip\":$(jstr "$IP"),\"peer\":$(jstr "$PEER"),\"peer_mac\":$(jstr "$PEERMAC"),\"count\":$(jnum "$COUNT"),\"sent\":$(jnum "$SENT"),\"received\":$(jnum "$RECV"),\"rx_packets\":$(jnum "$(st rx_packets)"),\"tx_packets\":$(jnum "$(st tx_packets)"),\"rx_bytes\":$(jnum "$(st rx_bytes)"),\"tx_bytes\":$(jnum "$(st tx_bytes)")"
fi

# ------------------------------------------------------------------ blk
if [ "$JOB" = blk ]; then
    if [ -z "$DEV" ] && [ -n "$MAIN" ]; then
        b="$(ls "$MAIN/block" 2>/dev/null | head -1)"
        [ -n "$b" ] && DEV="/dev/$b"
    fi
    [ -n "$DEV" ] || DEV=/dev/vda
    i=0
    while [ ! -b "$DEV" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    SIZE=0; WRITTEN=0; VERIFIED=0; BAD=""; READMODE=""; HOSTOK=""; HOSTGOT=""; HOSTBYTES=0
    if [ ! -b "$DEV" ]; then
        fail "$DEV is not a block device"
    else
        SIZE="$(blockdev --getsize64 "$DEV")"
        if [ -z "$OFFS" ]; then
            mid=$(( (SIZE / 2) / BS * BS ))
            last=$(( SIZE / BS * BS - BS ))
            OFFS="0,$mid,$last"
        fi
        OFFLIST="$(echo "$OFFS" | tr ',' ' ')"
        # write: the pattern of each block is "vhtest off=OFFSET\n" repeated (BS bytes)
        for o in $OFFLIST; do
            yes "vhtest off=$o" | head -c "$BS" > "/tmp/pat.$o"
            if timeout 30 dd if="/tmp/pat.$o" of="$DEV" bs="$BS" seek=$((o / BS)) count=1 conv=notrunc 2>/tmp/dd.err; then
                WRITTEN=$((WRITTEN + BS))
            else
                fail "write at $o: $(cat /tmp/dd.err)"
            fi
        done
        timeout 30 sync
        blockdev --flushbufs "$DEV" 2>/dev/null
        echo 3 > /proc/sys/vm/drop_caches
        # read back (O_DIRECT when busybox dd can, so the read really goes to the backend)
        READMODE=direct
        rd() {  # rd OFFSET LEN OUT
            if [ "$READMODE" = direct ] &&
               timeout 30 dd if="$DEV" of="$3" bs="$2" skip=$(($1 / $2)) count=1 iflag=direct 2>/dev/null; then
                return 0
            fi
            READMODE=buffered
            timeout 30 dd if="$DEV" of="$3" bs="$2" skip=$(($1 / $2)) count=1 2>/dev/null
        }
        for o in $OFFLIST; do
            if rd "$o" "$BS" "/tmp/rd.$o" && cmp -s "/tmp/pat.$o" "/tmp/rd.$o"; then
                VERIFIED=$((VERIFIED + BS))
            else
                BAD="${BAD:+$BAD,}$o"
            fi
        done
        [ -z "$BAD" ] || fail "read-back mismatch at $BAD"
        if [ -n "$HOSTOFF" ]; then
            if rd "$HOSTOFF" "$HOSTLEN" /tmp/host.bin; then
                HOSTGOT="$(md5sum /tmp/host.bin | cut -d' ' -f1)"
                HOSTBYTES="$(wc -c < /tmp/host.bin)"
                HOSTOK=1
                if [ -n "$HOSTMD5" ] && [ "$HOSTMD5" != "$HOSTGOT" ]; then
                    HOSTOK=0; fail "host data at $HOSTOFF: md5 $HOSTGOT != $HOSTMD5"
                fi
            else
                HOSTOK=0; fail "read host data at $HOSTOFF failed"
            fi
        fi
        [ -z "$ERR" ] && OK=1
    fi
    EXTRA="\"dev\":$(jstr "$DEV"),\"size\":$(jnum "$SIZE"),\"block_size\":$BS,\"offsets\":[$(echo "$OFFS" | sed 's/[^0-9,]//g')],\"written\":$WRITTEN,\"verified\":$VERIFIED,\"bytes\":$((WRITTEN + VERIFIED)),\"read_mode\":$(jstr "${READMODE:-none}")"
    [ -n "$BAD" ] && EXTRA="$EXTRA,\"mismatch\":[$BAD]"
    if [ -n "$HOSTOFF" ]; then
        EXTRA="$EXTRA,\"host_off\":$(jnum "$HOSTOFF"),\"host_bytes\":$(jnum "$HOSTBYTES"),\"host_md5\":$(jstr "$HOSTGOT"),\"host_ok\":$(jbool "$HOSTOK")"
    fi
fi

if [ "$JOB" = info ]; then
    [ -z "$ERR" ] && OK=1
fi
case "$JOB" in net|blk|info) ;; *) fail "unknown job $JOB" ;; esac
[ -n "$ERR" ] && OK=0

printf 'VHTEST-RESULT {"job":%s,"ok":%s,%s%s"access_platform":%s,"iommu_group":%s,"dmar":%s,"features":%s,"devices":[%s],"kernel":%s,"uptime_s":%s,"error":%s}\n' \
    "$(jstr "$JOB")" "$(jbool "$OK")" "$EXTRA" "${EXTRA:+,}" "$(jbool "$AP")" "$(jbool "$GRP")" "$(jbool "$DMAR")" \
    "$(jstr "$FEAT")" "$DEVS" "$(jstr "$(uname -r)")" "$(uptime_s)" \
    "$(if [ -n "$ERR" ]; then jstr "$ERR"; else printf null; fi)"
off
