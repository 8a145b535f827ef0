#!/bin/sh
# Checks that the ubd-vm guest has what reactor-ubd's device tests need.
# Run it as:  scripts/vm/ubd-vm -- scripts/vm/guest-selftest.sh
set -eu
step() { printf '\n== %s\n' "$*"; }
[ "${UBD_VM:-}" = 1 ] || { echo "run me inside scripts/vm/ubd-vm" >&2; exit 2; }

step kernel
uname -r
ls -l /dev/ublk-control

step java
JAVA=${JAVA:-/usr/lib/jvm/temurin-25-jdk-amd64/bin/java}
t0=$(date +%s%N)
"$JAVA" -version 2>&1
echo "java -version took $(( ($(date +%s%N) - t0) / 1000000 )) ms"

step "null_blk through configfs"
# On 6.12 the disk is named after the configfs directory (not nullb<index>).
d=/sys/kernel/config/nullb/nullb0
mkdir "$d"
echo 256 >"$d/size"            # MiB
echo 4096 >"$d/blocksize"
echo 1 >"$d/memory_backed"
echo 1 >"$d/power"
nb=/dev/${d##*/}
echo "index $(cat "$d/index")"
ls -l "$nb"
echo "size: $(blockdev --getsize64 "$nb") bytes"

step "ext4 on $nb"
mkfs.ext4 -q -F "$nb"
mkdir -p /mnt/nb
mount "$nb" /mnt/nb
echo hello >/mnt/nb/f
cat /mnt/nb/f
umount /mnt/nb

step "ext4 on a loop device"
truncate -s 64M /tmp/loop.img
lo=$(losetup -f --show /tmp/loop.img)
echo "$lo"
mkfs.ext4 -q -F "$lo"
mkdir -p /mnt/lo
mount "$lo" /mnt/lo
df -h /mnt/lo | tail -n 1
umount /mnt/lo
losetup -d "$lo"

step "fio io_uring on $nb"
fio --name=t --filename="$nb" --rw=randread --bs=4k --runtime=3 --time_based \
  --ioengine=io_uring --direct=1 --iodepth=16 --output-format=terse --terse-version=3 |
  awk -F';' '{ printf "read: %s IOPS, %s KiB/s\n", $8, $7 }'

step "remove $nb"
echo 0 >"$d/power"
rmdir "$d"
[ ! -e "$nb" ] && echo "$nb gone"

step "ublk_drv reload"
rmmod ublk_drv
[ ! -e /dev/ublk-control ] && echo "/dev/ublk-control gone after rmmod"
insmod "$UBD_VM_MODULES/ublk_drv.ko"
ls -l /dev/ublk-control

step done
