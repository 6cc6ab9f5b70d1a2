"""Real sshd endpoints on loopback for the bench's SSH variant.

``LoopbackSshd(workdir, count)`` starts ``count`` OpenSSH servers
(``/usr/sbin/sshd -D``), each on its own port of 127.0.0.1 with its own host
key, all accepting one client key generated for the run (public-key login
only, as root or as the user running the bench). Inventory hosts are spread
over the endpoints (``host_vars``), so every Ansible task really goes
through ssh: key exchange and authentication when a host's connection is
opened, then one multiplexed session per remote command (Ansible's default
``ControlMaster=auto``, ``ControlPersist=60s``).

Each inventory host gets a control socket of its own (``ansible_control_path``):
Ansible names the socket after address, port and user, so hosts sharing an
endpoint would otherwise share one master connection, which real hosts never do.
Every timed run uses a fresh control directory (``control_dir``) and
``close_masters`` ends the run's master connections afterwards, so no run
inherits the connections of the one before.

Only processes this module started are stopped (by pid).
"""

import getpass
import glob
import os
import re
import shutil
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile {pidfile}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {user}
UsePAM no
StrictModes no
MaxStartups 200:30:400
MaxSessions 200
Subsystem sftp {sftp}
LogLevel ERROR
"""


def _sftp_server():
    for path in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"):
        if os.access(path, os.X_OK):
            return path
    return "internal-sftp"


def unavailable():
    """Why the SSH variant cannot run here (a sentence), or None."""
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.access(tool, os.X_OK):
            return "OpenSSH server and client are needed (sshd, ssh, ssh-keygen; Debian: openssh-server)"
    return None


def _free_ports(count):
    """``count`` ports of 127.0.0.1 nobody listens on right now (the kernel picks them)."""
    socks, ports = [], []
    try:
        for dummy in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def proc_cpu(pid, children=False):
    """User + system CPU seconds of a live process (with its reaped children when asked), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
        return ticks / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return f.read().split()
    except OSError:
        return []


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


class LoopbackSshd(object):
    """``count`` sshd processes on 127.0.0.1, one client key; a context manager."""

    def __init__(self, workdir, count=20, start_timeout=15.0):
        self.dir = os.path.join(os.path.abspath(workdir), "sshd")
        self.count = count
        self.start_timeout = start_timeout
        self.user = getpass.getuser()
        self.key = os.path.join(self.dir, "client_ed25519")
        self.ports = []
        self.procs = []

    # -- set-up ------------------------------------------------------------------

    def _keygen(self, path, comment):
        if not os.path.exists(path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                           check=True, stdin=subprocess.DEVNULL)

    def start(self):
        why = unavailable()
        if why:
            raise RuntimeError(why)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self._keygen(self.key, "vfio-bench-client")
        authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copyfile(self.key + ".pub", authorized)
        os.chmod(authorized, 0o600)
        self.ports = _free_ports(self.count)
        sftp = _sftp_server()
        for e, port in enumerate(self.ports):
            hostkey = os.path.join(self.dir, "host_%02d_ed25519" % e)
            self._keygen(hostkey, "vfio-bench-host-%d" % e)
            conf = os.path.join(self.dir, "sshd_%02d.conf" % e)
            with open(conf, "w") as f:
                f.write(CONFIG.format(port=port, hostkey=hostkey, pidfile=os.path.join(self.dir, "sshd_%02d.pid" % e),
                                      authorized=authorized, user=self.user, sftp=sftp))
            log = open(os.path.join(self.dir, "sshd_%02d.log" % e), "w")
            try:
                self.procs.append(subprocess.Popen([SSHD, "-D", "-e", "-f", conf], stdin=subprocess.DEVNULL,
                                                   stdout=log, stderr=subprocess.STDOUT))
            finally:
                log.close()
        deadline = time.monotonic() + self.start_timeout
        waiting = list(zip(self.ports, self.procs))
        while waiting:
            waiting = [(port, proc) for port, proc in waiting if not _listening(port)]
            for port, proc in waiting:
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("sshd on port %d exited with %s: see %s" % (
                        port, proc.returncode, os.path.join(self.dir, "sshd_*.log")))
            if waiting and time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%d sshd endpoints did not listen within %.0f s" % (len(waiting), self.start_timeout))
            if waiting:
                time.sleep(0.05)
        self.check_login()
        return self

    def ssh_options(self):
        return ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", self.key]

    def check_login(self):
        """One key login on the first endpoint (``true``), so a broken set-up fails here and says why."""
        login = ["-p", str(self.ports[0]), "%s@127.0.0.1" % self.user, "true"]
        proc = subprocess.run(["ssh"] + self.ssh_options() + login,
                              capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError("key login to 127.0.0.1:%d failed (rc %d): %s" % (
                self.ports[0], proc.returncode, proc.stderr.strip()[:400]))

    # -- what the inventory needs ------------------------------------------------------

    def group_vars(self, python="/usr/bin/python3"):
        """Variables every host shares: ssh, the client key, no known_hosts writes, the host's python."""
        return {"ansible_connection": "ssh", "ansible_user": self.user,
                "ansible_ssh_private_key_file": self.key,
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                           "-o IdentitiesOnly=yes -o LogLevel=ERROR",
                "ansible_python_interpreter": python}

    def host_vars(self, index_of):
        """``host -> vars``: host ``i`` (``index_of(host)``) on endpoint ``i % count``, its own control socket."""
        def per_host(host):
            return {"ansible_host": "127.0.0.1", "ansible_port": self.ports[index_of(host) % len(self.ports)],
                    "ansible_control_path": "%(directory)s/" + host}
        return per_host

    @staticmethod
    def control_dir(base, label):
        """A fresh, empty control directory for one run (short: socket paths are at most 107 bytes)."""
        path = os.path.join(base, label)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, mode=0o700)
        return path

    @staticmethod
    def _ask_masters(cpdir, op):
        procs = [subprocess.Popen(["ssh", "-o", "ControlPath=%s" % sock, "-O", op, "bench"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for sock in glob.glob(os.path.join(cpdir, "*"))]
        out = []
        for proc in procs:
            try:
                out.append(proc.communicate(timeout=10)[1].decode("utf-8", "replace"))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        return out

    def close_masters(self, cpdir):
        """End the master connections a run left behind (``ssh -O exit`` on each socket).

        Returns the CPU seconds those master processes used (read from ``/proc`` just
        before they end): the client side of every connection, which no one reaps.
        """
        cpu = 0.0
        for answer in self._ask_masters(cpdir, "check"):
            match = re.search(r"pid=(\d+)", answer)
            used = proc_cpu(int(match.group(1))) if match else None
            cpu += used or 0.0
        self._ask_masters(cpdir, "exit")
        return round(cpu, 3)

    def server_cpu(self):
        """CPU seconds of the sshd listeners and every session they have reaped."""
        return round(sum(proc_cpu(p.pid, children=True) or 0.0 for p in self.procs), 3)

    def settle(self, timeout=5.0):
        """Wait until no session process is left under the listeners (their CPU is then counted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_children(p.pid) for p in self.procs):
            time.sleep(0.05)

    # -- tear-down ------------------------------------------------------------------

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
