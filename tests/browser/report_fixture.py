"""A synthetic fleet whose report shows every status, policy evidence and hostile strings.

Shared by the report unit tests and the headless-browser test. The ``nv-1``
row of ``alpha`` alone holds every status; ``EXPECTED_ALPHA`` lists them.
"""

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from tests.synthetic import facts, mig, ok, probe_all, range_rule

U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")

EVIL_HOST = "evil<script>alert(1)</script>"
EVIL_PARENT = "0000:\"&'<b>"
EVIL_TYPE = "x\"><img src=x onerror=alert(2)>"
EVIL_MESSAGE = "<script>alert('m')</script> & \"quoted\""
EVIL_REASON = "=cmd|' /C calc'!A0 <b>bold</b>"

# Best status (and evidence) from alpha's nv-1 to every other host.
EXPECTED_ALPHA = {
    "beta": ("compatible", "driver"),      # gpu0 1.3 takes 1.2; gpu1 1.1 refuses
    "delta": ("missing_type", "driver"),   # offers only gvt-4
    "down": ("unknown", "none"),           # unreachable
    "epsilon": ("error", "none"),          # EACCES on every write
    "eta": ("compatible", "policy"),       # rewritten to policy evidence below
    EVIL_HOST: ("compatible", "driver"),   # same version
    "gamma": ("incompatible", "driver"),   # other major
    "zeta": ("unsupported", "driver"),     # ENODEV
}


def all_status_hosts():
    """Host inputs (facts and probe results) for the fleet."""
    hosts = {
        "alpha": ok(facts({"gpu0": {"nv-1": ("p-1.2", 2, [U1, U2])}})),
        "beta": ok(facts({"gpu0": {"nv-1": ("p-1.3", 1, [])}, "gpu1": {"nv-1": ("p-1.1", 4, [])}})),
        "gamma": ok(facts({"gpu0": {"nv-1": ("p-2.0", 8, [U3])}})),
        "delta": ok(facts({"igd": {"gvt-4": ("q-1.0", 2, [])}})),
        "epsilon": ok(facts({"gpu0": {"nv-1": ("p-1.5", 3, [])}})),
        "eta": ok(facts({"gpu0": {"nv-1": ("p-1.2", 0, [])}})),
        "zeta": ok(facts({"gpu0": {"nv-1": (None, 2, [])}})),  # cannot migrate, see below
        EVIL_HOST: ok(facts({EVIL_PARENT: {"nv-1": ("p-1.2", 1, []), EVIL_TYPE: ("v<1>&", 1, [])}})),
        "down": {"state": "unreachable", "reason": "ssh: connect to host down port 22: Connection refused",
                 "facts": None, "probe": None},
    }

    # zeta's driver answers ENODEV: it cannot migrate, as a source or as a target
    hosts["zeta"]["facts"]["parents"]["gpu0"]["types"]["nv-1"]["migration"] = mig(
        None, False, {"errno": 19, "errno_name": "ENODEV", "message": "No such device"})

    def rule(source, target):
        return 19 if target is None else range_rule(source, target)

    probe_all(hosts, M.probe_batches(hosts), rule)
    for r in hosts["epsilon"]["probe"]["results"]:
        r.update(status="error", errno=13, errno_name="EACCES", message="Permission denied")
    for r in hosts["zeta"]["probe"]["results"]:
        r.update(status="unsupported", errno=19, errno_name="ENODEV", message="No such device")
    for r in hosts[EVIL_HOST]["probe"]["results"]:
        r["message"] = EVIL_MESSAGE
    return hosts


def all_status_matrix():
    """The matrix, with eta's verdicts turned into policy evidence (a later feature)."""
    m = M.compat_matrix(all_status_hosts())
    for per_target in m["verdicts"].values():
        for v in per_target.get("eta", []):
            if v["status"] == "compatible":
                v["evidence"] = "policy"
                v["message"] = "policy: same type and host driver version"
    m["hosts"]["zeta"]["reason"] = EVIL_REASON
    return m


def all_status_plan(matrix):
    """Drain alpha and gamma: alpha's instances find room, gamma's is stranded."""
    return M.drain_plan(matrix, ["alpha", "gamma"])
