#!/bin/bash
# Build the tiny test guest used by test/qemu/guest.py:
#   test/qemu/cache/vmlinuz    Debian 12 cloud kernel (linux-image-6.1.0-*-cloud-amd64)
#   test/qemu/cache/initrd.gz  busybox-static + virtio_pci/virtio_net/virtio_blk modules + /init
#
# Idempotent: the output is rebuilt only when this script, guest-init.sh or the
# kernel/busybox package versions change.  Packages are fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`; they are never installed.
# The host tools it needs (qemu-system-x86, cpio, ...) are installed with apt-get
# only when missing.  Run as root on Debian 12.
#
# Options: --force  rebuild even when the cache looks current
#          --offline  never call apt-get update / download (use cached .debs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VHTEST_CACHE:-$HERE/cache}"
FORCE=0
OFFLINE=0
for a in "$@"; do
    case "$a" in
        --force) FORCE=1 ;;
        --offline) OFFLINE=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build-guest.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: ERROR: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update_once() {
    [ "$OFFLINE" = 1 ] && return 0
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq >&2 || log "apt-get update failed (continuing with existing lists)"
        APT_UPDATED=1
    fi
}

# ---------------------------------------------------------------- host tools
need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# package -> a file it provides (checked first, so foreign installs also count)
declare -A PKG_FILE=(
    [qemu-system-x86]=/usr/bin/qemu-system-x86_64
    [qemu-system-common]=/usr/bin/qemu-storage-daemon
    [cpio]=/usr/bin/cpio
    [xz-utils]=/usr/bin/xz
    [zstd]=/usr/bin/zstd
    [gzip]=/bin/gzip
    [kmod]=/sbin/depmod
)
for p in qemu-system-x86 qemu-system-common cpio xz-utils zstd gzip kmod; do
    f="${PKG_FILE[$p]}"
    if [ -x "$f" ] || [ -x "/usr$f" ] || have_pkg "$p"; then continue; fi
    need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages ${need_pkgs[*]} and not root"
    [ "$OFFLINE" = 1 ] && die "missing packages ${need_pkgs[*]} (offline)"
    log "installing ${need_pkgs[*]}"
    apt_update_once
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2 \
        || die "apt-get install ${need_pkgs[*]} failed"
fi
DEPMOD=$(command -v depmod || echo /sbin/depmod)

# ---------------------------------------------------------------- packages
mkdir -p "$CACHE/debs"
cd "$CACHE/debs"

# apt-get download runs as _apt when it can; make the directory writable for
# it so it does not print the "unsandboxed" warning.
chmod 0777 "$CACHE/debs" 2>/dev/null || true

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

deb_for() {   # deb_for NAME VERSION -> cached .deb path (may not exist)
    local v="${2//:/%3a}"
    echo "$CACHE/debs/${1}_${v}_amd64.deb"
}

download() {  # download NAME -> prints path of the .deb
    local name="$1" ver deb
    ver="$(candidate "$name")"
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        apt_update_once
        ver="$(candidate "$name")"
    fi
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        # offline / no lists: fall back to any cached .deb of that name
        deb="$(ls -1 "$CACHE/debs/${name}_"*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)"
        [ -n "$deb" ] || die "no candidate for $name and nothing cached"
        echo "$deb"; return
    fi
    deb="$(deb_for "$name" "$ver")"
    if [ ! -s "$deb" ]; then
        [ "$OFFLINE" = 1 ] && die "$name $ver not cached (offline)"
        log "downloading $name $ver"
        if ! apt-get download -q "$name=$ver" >&2; then
            apt_update_once
            apt-get download -q "$name=$ver" >&2 || die "apt-get download $name=$ver failed"
        fi
    fi
    [ -s "$deb" ] || deb="$(ls -1 "$CACHE/debs/${name}_"*_amd64.deb | sort -V | tail -1)"
    echo "$deb"
}

META_DEB="$(download linux-image-cloud-amd64)"
# Resolve the metapackage to the real versioned image package.
KPKG="$(dpkg-deb -f "$META_DEB" Depends | tr ',' '\n' \
        | grep -o 'linux-image-[0-9][^ ]*-cloud-amd64' | head -1)"
[ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64 to a versioned package"
KDEB="$(download "$KPKG")"
BBDEB="$(download busybox-static)"
KVER="${KPKG#linux-image-}"
log "kernel package $KPKG ($(basename "$KDEB")), busybox $(basename "$BBDEB")"

# ---------------------------------------------------------------- up to date?
STAMP_WANT="$(
    {
        echo "kdeb=$(basename "$KDEB") bbdeb=$(basename "$BBDEB")"
        sha256sum "$HERE/build-guest.sh" "$HERE/guest-init.sh" | awk '{print $1}'
    } | sha256sum | awk '{print $1}'
)"
if [ "$FORCE" = 0 ] && [ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/initrd.gz" ] \
   && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$STAMP_WANT" ]; then
    log "cache is current: $CACHE/vmlinuz $CACHE/initrd.gz ($KVER)"
    exit 0
fi

# ---------------------------------------------------------------- unpack
WORK="$CACHE/work"
rm -rf "$WORK"
mkdir -p "$WORK/kernel" "$WORK/busybox" "$WORK/root"
log "unpacking $(basename "$KDEB")"
dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$BBDEB" "$WORK/busybox"

# usrmerge-agnostic: modules may be under /lib/modules or /usr/lib/modules
MODBASE=""
for d in "$WORK/kernel/lib/modules/$KVER" "$WORK/kernel/usr/lib/modules/$KVER"; do
    [ -d "$d" ] && MODBASE="$d"
done
[ -n "$MODBASE" ] || die "no modules directory for $KVER in $KDEB"
VMLINUZ="$WORK/kernel/boot/vmlinuz-$KVER"
[ -s "$VMLINUZ" ] || die "no $VMLINUZ"

# The .deb ships no modules.dep (depmod normally runs at install time):
# generate it inside the unpacked tree.
if [ ! -s "$MODBASE/modules.dep" ]; then
    ROOTBASE="${MODBASE%/lib/modules/$KVER}"
    "$DEPMOD" -b "$ROOTBASE" "$KVER" || die "depmod -b $ROOTBASE $KVER failed"
fi
[ -s "$MODBASE/modules.dep" ] || die "no modules.dep"

# ---------------------------------------------------------------- modules
WANT_MODS="virtio_pci virtio_net virtio_blk"
declare -A SEEN=()
ORDER=()
modpath() {  # module name -> relative path from modules.dep ('' when built in)
    local m="$1" alt
    alt="${m//_/-}"
    awk -F: -v a="$m" -v b="$alt" '{
        n=$1; sub(/.*\//, "", n); sub(/\.ko(\.(xz|gz|zst))?$/, "", n);
        if (n == a || n == b) { print $1; exit }
    }' "$MODBASE/modules.dep"
}
resolve() {  # depth-first: dependencies before the module
    local rel="$1" deps d
    [ -n "${SEEN[$rel]:-}" ] && return 0
    SEEN[$rel]=1
    deps="$(awk -F: -v r="$rel" '$1 == r { print $2; exit }' "$MODBASE/modules.dep")"
    for d in $deps; do resolve "$d"; done
    ORDER+=("$rel")
}
for m in $WANT_MODS; do
    rel="$(modpath "$m")"
    if [ -z "$rel" ]; then
        if grep -qE "/${m}\.ko" "$MODBASE/modules.builtin" 2>/dev/null; then
            log "$m is built in"; continue
        fi
        die "module $m not found in modules.dep"
    fi
    resolve "$rel"
done

R="$WORK/root"
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,etc,mnt,run,lib/modules}
cp "$WORK/busybox/bin/busybox" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$R/bin/$applet"
done
: > "$R/etc/modules.order"
for rel in "${ORDER[@]}"; do
    src="$MODBASE/$rel"
    base="$(basename "$rel")"
    case "$base" in
        *.ko.xz)  out="${base%.xz}";  xz -dc "$src" > "$R/lib/modules/$out" ;;
        *.ko.zst) out="${base%.zst}"; zstd -qdc "$src" > "$R/lib/modules/$out" ;;
        *.ko.gz)  out="${base%.gz}";  gzip -dc "$src" > "$R/lib/modules/$out" ;;
        *.ko)     out="$base";        cp "$src" "$R/lib/modules/$out" ;;
        *) die "unexpected module file $rel" ;;
    esac
    echo "$out" >> "$R/etc/modules.order"
done
log "modules (load order): $(tr '\n' ' ' < "$R/etc/modules.order")"

cp "$HERE/guest-init.sh" "$R/init"
chmod 0755 "$R/init"
echo "$KVER" > "$R/etc/kernel-version"
# /dev/console must exist before devtmpfs is mounted so early output works.
mknod -m 0600 "$R/dev/console" c 5 1 2>/dev/null || true
mknod -m 0666 "$R/dev/null" c 1 3 2>/dev/null || true

# ---------------------------------------------------------------- pack
log "packing initramfs"
# fixed mtimes + sorted names + gzip -n: the same inputs give the same bytes
find "$R" -exec touch -h -d @0 {} +
( cd "$R" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null -o -H newc --owner=0:0 --reproducible --quiet ) | gzip -9n > "$CACHE/initrd.gz.tmp"
cp "$VMLINUZ" "$CACHE/vmlinuz.tmp"
mv -f "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
mv -f "$CACHE/initrd.gz.tmp" "$CACHE/initrd.gz"
echo "$KVER" > "$CACHE/kernel-version"
echo "$STAMP_WANT" > "$CACHE/stamp"
rm -rf "$WORK"
log "done: $CACHE/vmlinuz ($KVER, $(stat -c %s "$CACHE/vmlinuz") bytes)," \
    "$CACHE/initrd.gz ($(stat -c %s "$CACHE/initrd.gz") bytes)"
