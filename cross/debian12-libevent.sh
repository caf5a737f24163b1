#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# debian12-libevent.sh TRIPLET DIR: for a cross build on Debian 12, write
# DIR/libevent.pc for TRIPLET's libevent and print DIR, for meson's
# -Dpkg_config_path= (or PKG_CONFIG_PATH).
#
# Why: Debian 12's libevent-dev is not Multi-Arch: same, so installing
# libevent-dev:arm64 removes the build machine's libevent-dev (and the
# other way round).  The runtime libraries are co-installable
# (libevent-2.1-7:arm64 ...), and the headers are the same for every
# 64-bit little-endian target (event-config.h records type sizes only), so
# this .pc pairs the build machine's headers with TRIPLET's libraries.  On
# a machine (or chroot) that builds only for TRIPLET, install
# libevent-dev:ARCH instead and skip this.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 TRIPLET DIR" >&2; exit 2; }
triplet=$1 dir=$2
case $triplet in
aarch64-linux-gnu | x86_64-linux-gnu | riscv64-linux-gnu | powerpc64le-linux-gnu) ;;
*)
	echo "$0: $triplet is not a 64-bit little-endian target:" \
	    "the build machine's event-config.h does not fit; install" \
	    "libevent-dev for it instead" >&2
	exit 1
	;;
esac
libdir=/usr/lib/$triplet
# libevent-2.1.so.7 holds core and extra both; it is all the .pc links
# (libevent_core/_extra are other packages, which the agent does not need).
[ -e "$libdir/libevent-2.1.so.7" ] || {
	echo "$0: $libdir/libevent-2.1.so.7 missing: apt-get install" \
	    "libevent-2.1-7:<arch>" >&2
	exit 1
}
[ -f /usr/include/event2/event-config.h ] || {
	echo "$0: /usr/include/event2 missing: apt-get install libevent-dev" >&2
	exit 1
}
version=$(sed -n 's/^#define EVENT__VERSION "\(.*\)"$/\1/p' \
	/usr/include/event2/event-config.h)
mkdir -p "$dir"
cat >"$dir/libevent.pc" <<PC
# Written by cross/debian12-libevent.sh: headers of the build machine's
# libevent-dev, libraries of $triplet.
libdir=$libdir
includedir=/usr/include

Name: libevent
Description: libevent for $triplet (Debian 12 multiarch stand-in)
Version: $version
Libs: -L\${libdir} -l:libevent-2.1.so.7
Cflags:
PC
echo "$dir"
