#!/bin/sh
# /init of the kernel-lab initramfs (busybox sh, PID 1; /bin/sh -> busybox).
#
# Loads virtio/9p/e1000 and the VFIO stack, loads the patched mtty sample with
# this VM's parameters, creates its mdev instances, mounts the build machine's
# root filesystem read-only over 9p and starts that machine's sshd in a chroot
# of it, so Ansible finds /usr/bin/python3 and mdevctl in the guest.
#
# Per-VM settings come from the kernel command line (written by lab.py):
#   lab_name=kvm-a
#   lab_mtty=migration=1,migration_version=mtty-1.2   (insmod parameters, ","-separated)
#   lab_mdevs=<uuid>:mtty-2,<uuid>:mtty-1              (instances to create)
#   lab_libvirt=hidden                                 (a host without libvirt: hide the build machine's)
# Every line this script prints starts with "lab:" on the serial console.

/bin/busybox mkdir -p /proc /sys /dev /bin /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

log() { echo "lab: $*"; }
fail() { echo "lab: FAILED: $*"; }

LAB_NAME=lab LAB_MTTY= LAB_MDEVS= LAB_LIBVIRT=
for w in $(cat /proc/cmdline); do
    case "$w" in
        lab_name=*) LAB_NAME=${w#lab_name=} ;;
        lab_mtty=*) LAB_MTTY=${w#lab_mtty=} ;;
        lab_mdevs=*) LAB_MDEVS=${w#lab_mdevs=} ;;
        lab_libvirt=*) LAB_LIBVIRT=${w#lab_libvirt=} ;;
    esac
done
hostname "$LAB_NAME"
log "init on $(uname -r) as $LAB_NAME, uptime $(cut -d' ' -f1 /proc/uptime)s"

# Modules in dependency order (lab.py resolved them from modules.dep).
while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "/modules/$mod.ko" || fail "insmod $mod"
done < /modules/order
# shellcheck disable=SC2046  # the parameters are meant to split
insmod /modules/mtty.ko $(echo "$LAB_MTTY" | tr ',' ' ') || fail "insmod mtty $LAB_MTTY"
log "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

for spec in $(echo "$LAB_MDEVS" | tr ',' ' '); do
    uuid=${spec%%:*} type=${spec#*:}
    if echo "$uuid" > "/sys/class/mdev_bus/mtty/mdev_supported_types/$type/create"; then
        log "mdev $uuid ($type) created"
    else
        fail "create mdev $uuid ($type)"
    fi
done

# Network: qemu user networking (slirp) always hands out 10.0.2.15.
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 \
    || fail "network"

# The build machine's root, read-only, as the guest's userland.
R=/hostroot
mkdir -p $R
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R \
    || { fail "mount 9p hostroot"; exec sh; }
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
for d in tmp run root var/run; do
    # /var/run is a symlink to /run on Debian: the tmpfs on /run covers it.
    [ -L "$R/$d" ] || mount -t tmpfs -o mode=0755 tmpfs "$R/$d"
done
chmod 1777 $R/tmp
# lab_libvirt=hidden (the 6.1 lab): a hypervisor without libvirt, whose instances are the demand;
# the build machine's own libvirt state, if it has any, is hidden.
if [ "$LAB_LIBVIRT" = hidden ] && [ -d "$R/etc/libvirt" ]; then
    mount -t tmpfs -o mode=0755 tmpfs "$R/etc/libvirt"
fi
mkdir -p $R/run/sshd $R/run/lab
cp /lab/ssh_host_ed25519_key /lab/authorized_keys $R/run/lab/
chmod 600 $R/run/lab/ssh_host_ed25519_key
cat > $R/run/lab/sshd_config <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey /run/lab/ssh_host_ed25519_key
PidFile /run/lab/sshd.pid
PermitRootLogin yes
PubkeyAuthentication yes
AuthorizedKeysFile /run/lab/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 50:30:100
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
chroot $R /usr/sbin/sshd -D -e -f /run/lab/sshd_config &
log "ready: sshd started, uptime $(cut -d' ' -f1 /proc/uptime)s"

# PID 1 must not exit; lab.py stops the VM by ending qemu.
while :; do sleep 3600; done
