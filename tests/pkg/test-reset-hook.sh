#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deploy/hooks/npu-reset-sysfs, the example reset hook, on a fake sysfs
# tree (NPUFARM_SYSFS) and a fake modprobe: a driver rebind writes the
# device to unbind then bind and waits for the driver link; a function
# reset writes 1; a module reload runs modprobe -r then modprobe; names
# that climb out of sysfs, missing drivers and a device that never gets
# its driver back fail with a message.
#
# Usage: test-reset-hook.sh HOOK.  TAP on stdout.
. "$(dirname "$0")/../tap.sh"
hook=$1
tmp=$(mktemp -d /tmp/npufarm-hook-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sys=$tmp/sys
drv=$sys/bus/platform/drivers/rknpu
mkdir -p "$drv/fdab0000.npu" "$sys/bus/platform/devices/fdab0000.npu/driver" \
	"$sys/bus/pci/devices/0000:01:00.0"
: >"$drv/bind"
: >"$drv/unbind"
: >"$sys/bus/pci/devices/0000:01:00.0/reset"
export NPUFARM_SYSFS=$sys NPUFARM_RESET_WAIT=1

check "unbind/bind rebinds the device" \
	"$hook" unbind platform rknpu fdab0000.npu
check "it wrote the device to unbind, then to bind" \
	sh -c "grep -qx fdab0000.npu '$drv/unbind' &&
	grep -qx fdab0000.npu '$drv/bind'"
check "a PCI function reset writes 1" \
	sh -c "'$hook' reset pci 0000:01:00.0 &&
	grep -qx 1 '$sys/bus/pci/devices/0000:01:00.0/reset'"

printf '#!/bin/sh\necho "$*" >>"%s/modprobe.log"\n' "$tmp" >"$tmp/modprobe"
chmod +x "$tmp/modprobe"
check "a module reload runs modprobe -r, then modprobe" \
	sh -c "NPUFARM_MODPROBE='$tmp/modprobe' '$hook' module rknpu &&
	printf -- '-r rknpu\nrknpu\n' | cmp - '$tmp/modprobe.log'"

fails() {
	desc=$1 want=$2
	shift 2
	if out=$("$@" 2>&1); then
		not_ok "$desc" "exited 0: $out"
	else
		case $out in
		*"$want"*) ok "$desc" ;;
		*) not_ok "$desc" "$out" ;;
		esac
	fi
}
fails "a name with a slash is refused" "bad name" \
	"$hook" unbind platform ../../.. fdab0000.npu
fails "an unknown driver fails" "no such driver" \
	"$hook" unbind platform nonpu fdab0000.npu
rm -r "$sys/bus/platform/devices/fdab0000.npu/driver"
fails "a device that gets no driver back fails" "no driver 1s after bind" \
	"$hook" unbind platform rknpu fdab0000.npu
fails "a failing modprobe fails the hook" "modprobe -r rknpu failed" \
	env NPUFARM_MODPROBE=false "$hook" module rknpu
fails "bad usage" "usage:" "$hook" frobnicate
tap_done
