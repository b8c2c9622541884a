"""A throw-away single-node Slurm cluster for tests/test_slurm.py: munged, slurmctld and slurmd with all their
configuration and state in one temporary directory, on free ports, with two fake GPUs.

Nothing outside the directory is touched: no /etc/slurm, no /etc/munge, no system services. Every Slurm command
meant for this cluster must run with `cluster.env`: SLURM_CONF points at the generated slurm.conf, and PATH starts
with wrappers of the client commands that set SLURM_CONF again (see write_client_wrappers: the Snakemake plugin's
job step drops SLURM_CONF before its srun). Jobs inherit both (sbatch --export=ALL).

Needs root (slurmd starts jobs and their steps as the submitting user) and Debian's Slurm 22.05 packages
(.ci/install-slurm.sh). `unavailable()` says why a cluster cannot be started here, for pytest.skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
GPU_TYPE = "testgpu"
CLIENTS = ("sbatch", "srun", "salloc", "squeue", "sinfo", "scontrol", "scancel", "sacct", "sacctmgr", "sshare", "sstat",
           "sattach", "sprio")  # fmt: skip


def which(name: str) -> str | None:
    """Daemons live in sbin, which a non-login PATH may lack."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def unavailable() -> str | None:
    """Why a cluster can't be started here (a skip reason), or None."""
    missing = [b for b in BINARIES if not which(b)]
    if missing:
        return f"Slurm/munge not installed (missing {', '.join(missing)}); run .ci/install-slurm.sh"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd launches jobs); run pytest as root, e.g. under sudo"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def node_hardware() -> dict[str, int]:
    """What `slurmd -C` reports (CPUs, sockets, cores, threads, RealMemory), with /proc fall-backs."""
    hw = {"CPUs": os.cpu_count() or 1, "RealMemory": 0}
    try:
        out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"):
        m = re.search(rf"\b{key}=(\d+)", out)
        if m:
            hw[key] = int(m.group(1))
    if not hw["RealMemory"]:
        with open("/proc/meminfo") as f:
            hw["RealMemory"] = int(f.readline().split()[1]) // 1024
    return hw


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen
    log: Path
    out: IO[bytes] | None = None  # the daemon's stdout/stderr file


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    cpus: int
    real_memory_mb: int
    gpus: int
    gpu_type: str = GPU_TYPE
    cpu_partition: str = "cpu"
    gpu_partition: str = "gpu"
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def env(self) -> dict[str, str]:
        """The environment for Slurm commands and for Snakemake runs that submit to this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        # our client wrappers first (see write_client_wrappers); sbin last, for the daemons
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", ""), *SBIN])
        for var in list(env):  # a surrounding allocation (CI inside Slurm) must not leak into ours
            if var.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and var != "SLURM_CONF":
                del env[var]
        return env

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job -o` as key=value pairs (values without spaces; enough for TRES, state, partition)."""
        out = self.run("scontrol", "show", "job", "-o", str(job_id)).stdout
        return dict(m.groups() for m in re.finditer(r"(\S+?)=(\S*)", out))

    def known_job_ids(self) -> set[str]:
        """Job ids squeue still knows (finished ones too, for MinJobAge seconds)."""
        out = self.run("squeue", "-h", "-a", "-t", "all", "-o", "%i").stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False).stdout
        return out.strip().splitlines()[0] if out.strip() else ""

    def logs(self, tail: int = 40) -> str:
        parts = []
        for daemon in self.daemons:
            try:
                lines = daemon.log.read_text(errors="replace").splitlines()[-tail:]
            except OSError:
                lines = []
            parts.append(f"--- {daemon.name} ({daemon.log}) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    # ---- life cycle ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel jobs, stop the daemons by their PIDs (slurmd, slurmctld, munged) and kill any process left."""
        if any(d.process.poll() is None for d in self.daemons if d.name == "slurmctld"):
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name, timeout=10, check=False)
        for daemon in reversed(self.daemons):
            _terminate(daemon.process)
            if daemon.out is not None:
                daemon.out.close()
        # job steps (slurmstepd and what it started) run detached from slurmd; they carry our SLURM_CONF
        for pid in _pids_with_env("SLURM_CONF", str(self.conf)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.daemons.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _terminate(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _pids_with_env(name: str, value: str) -> list[int]:
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _fake_gpu_devices(dev_dir: Path, n: int) -> list[Path]:
    """Character devices with NVIDIA's major number (195), as gres.conf File= needs device nodes to exist."""
    dev_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = dev_dir / f"nvidia{i}"
        if not path.exists():
            try:
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(195, i))
            except PermissionError:  # no CAP_MKNOD (some containers): a plain file is accepted as well
                path.touch(0o666)
        paths.append(path)
    return paths


def write_config(root: Path, *, gpus: int = 2, gpu_type: str = GPU_TYPE, memory_fraction: float = 0.75) -> SlurmCluster:
    """slurm.conf and gres.conf for one node with `gpus` fake GPUs of type `gpu_type` (what sbatch --gpus=<type>:N
    and Snakemake's gpu_model name), partitions `cpu` (default) and `gpu`."""
    hw = node_hardware()
    node = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = free_ports(2)
    real_memory = max(512, int(hw["RealMemory"] * memory_fraction))
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    devices = _fake_gpu_devices(root / "dev", gpus)
    munge_socket = root / "munge" / "munge.socket"
    topology = " ".join(
        f"{k}={hw[k]}" for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore") if k in hw
    )
    conf = root / "slurm.conf"
    conf.write_text(
        f"""# generated by tests/slurm_cluster.py
ClusterName=opbench-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no accounting database: sacct has nothing to say; status comes from squeue (MinJobAge keeps finished jobs)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
# memory is checked against RealMemory but not consumed: a small CI runner still runs jobs side by side
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MinJobAge=600
InactiveLimit=0
KillWait=5
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={hw["CPUs"]} {topology} RealMemory={real_memory} \
 Gres=gpu:{gpu_type}:{gpus} State=UNKNOWN
PartitionName=cpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node} MaxTime=INFINITE State=UP
"""
    )
    (root / "gres.conf").write_text(
        "# generated by tests/slurm_cluster.py: fake device nodes, so the node's Gres=gpu count is backed by files\n"
        + "".join(f"NodeName={node} Name=gpu Type={gpu_type} File={path}\n" for path in devices)
    )
    return SlurmCluster(
        root=root, conf=conf, node=node, cpus=hw["CPUs"], real_memory_mb=real_memory, gpus=gpus, gpu_type=gpu_type
    )


def write_client_wrappers(cluster: SlurmCluster) -> None:
    """Wrappers for the Slurm client commands that set SLURM_CONF and exec the real ones.

    The plugin's job step (snakemake-executor-plugin-slurm-jobstep) runs its srun with every SLURM_* variable
    but the job's identity removed, SLURM_CONF included, so srun inside a job would look for /etc/slurm/slurm.conf
    (then DNS SRV records) instead of this cluster. PATH survives, so a wrapper first on PATH fixes it without
    touching /etc.
    """
    cluster.bin.mkdir(exist_ok=True)
    for name in CLIENTS:
        real = shutil.which(name)
        if not real:
            continue
        wrapper = cluster.bin / name
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={cluster.conf}\nexport SLURM_CONF\nexec {real} "$@"\n')
        wrapper.chmod(0o755)


def _start_munge(cluster: SlurmCluster) -> Daemon:
    """munged refuses to run as root: run it as the `munge` user (Debian's package creates it)."""
    mdir = cluster.root / "munge"
    mdir.mkdir(mode=0o700, exist_ok=True)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    user = pwd.getpwnam("munge") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    for path in (mdir, key):
        os.chown(path, user.pw_uid, user.pw_gid)
    log = cluster.root / "log" / "munged.log"
    cmd = [
        which("munged"), "--foreground", "--force",
        f"--socket={mdir / 'munge.socket'}", f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
        f"--seed-file={mdir / 'munged.seed'}", f"--log-file={log}",
    ]  # fmt: skip

    def drop_privileges() -> None:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    # Log to a file munge can write: the log directory belongs to root, so hand it the file
    log.touch()
    os.chown(log, user.pw_uid, user.pw_gid)
    out = open(cluster.root / "log" / "munged.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=drop_privileges, start_new_session=True
    )
    daemon = Daemon("munged", process, log, out)
    socket_path = mdir / "munge.socket"
    _wait(lambda: socket_path.exists(), 15, "munged socket", cluster, daemon)
    return daemon


def _start(cluster: SlurmCluster, name: str, *args: str) -> Daemon:
    out = open(cluster.root / "log" / f"{name}.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [which(name), *args], env=cluster.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Daemon(name, process, cluster.root / "log" / f"{name}.log", out)


def _wait(ready, timeout: float, what: str, cluster: SlurmCluster, daemon: Daemon | None = None) -> None:
    deadline = time.monotonic() + timeout
    problem = f"not ready after {timeout:.0f} s"
    while time.monotonic() < deadline:
        if ready():
            return
        if daemon is not None and daemon.process.poll() is not None:
            problem = f"{daemon.name} exited with {daemon.process.returncode}"
            break
        time.sleep(0.5)
    out = ""
    if daemon is not None:
        with contextlib.suppress(OSError):
            out = (cluster.root / "log" / f"{daemon.name}.out").read_text(errors="replace")
    raise RuntimeError(f"Slurm test cluster: {what}: {problem}\n{out}\n{cluster.logs()}")


def start_cluster(root: Path | None = None, *, gpus: int = 2, timeout: float = 60) -> SlurmCluster:
    """Write the configuration, start munged, slurmctld and slurmd, and wait until the node is idle."""
    made_root = root is None
    if root is None:
        # short and world-traversable: the munge socket path must stay under ~100 bytes and munged (not root)
        # must reach its directory
        root = Path(tempfile.mkdtemp(prefix="opbench-slurm-"))
    root.chmod(0o755)
    cluster = write_config(root, gpus=gpus)
    write_client_wrappers(cluster)
    try:
        cluster.daemons.append(_start_munge(cluster))
        ctld = _start(cluster, "slurmctld", "-D", "-c", "-i", "-f", str(cluster.conf))
        cluster.daemons.append(ctld)
        _wait(lambda: cluster.run("scontrol", "ping", check=False).stdout.count("UP") > 0, timeout, "slurmctld",
              cluster, ctld)  # fmt: skip
        slurmd = _start(cluster, "slurmd", "-D", "-f", str(cluster.conf))
        cluster.daemons.append(slurmd)
        _wait(lambda: cluster.node_state().startswith("idle"), timeout, f"node {cluster.node} idle", cluster, slurmd)
    except BaseException:
        cluster.stop()  # the error carries the daemons' log tails
        if made_root:
            shutil.rmtree(root, ignore_errors=True)
        raise
    atexit.register(cluster.stop)  # a backstop should the caller never get to stop it (idempotent)
    return cluster


if __name__ == "__main__":  # manual check: python tests/slurm_cluster.py
    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    started = time.monotonic()
    c = start_cluster()
    print(f"cluster up in {time.monotonic() - started:.1f} s at {c.root}; SLURM_CONF={c.conf}")
    print(c.run("sinfo").stdout)
    print(c.run("scontrol", "show", "node", c.node).stdout)
    wrap = "env | grep -E 'CUDA|SLURM_JOB_ID'"
    job = c.run(
        "sbatch", "--parsable", "-p", "gpu", f"--gpus={c.gpu_type}:1", "--wrap", wrap, "-o", str(c.root / "job.out")
    ).stdout.strip()  # fmt: skip
    time.sleep(5)
    print(c.show_job(job))
    print((c.root / "job.out").read_text() if (c.root / "job.out").exists() else "no output")
    c.cleanup()
