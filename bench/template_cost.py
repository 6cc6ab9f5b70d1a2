"""What a task's templates cost each host's worker: CPU of templating in a freshly forked process.

    .venv/bin/python bench/template_cost.py            # 30 forks per case
    .venv/bin/python bench/template_cost.py --repeat 100 --json
    .venv/bin/python bench/template_cost.py --targets 1000   # a fleet's worth of batches in the variable

ansible-playbook forks one worker per host and task, and ansible-core keeps no
compiled template: every worker compiles each template of its task again, in a
process whose memory is copied page by page as it is touched. This bench forks
a process that has templated once already (as the main process has) and times,
in each child, the templates a case names: the probe task's and the gathering
task's arguments and conditions as the roles write them, and earlier forms of
them, with the batches of a dense fleet (48 checks per target, 200 targets unless told).
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def role_task(path, action):
    """``(templates, conditional)`` of the task running ``action`` in a role's task file, as written there:
    the templates of its arguments (``option_vars`` names variables: none) and of its keywords (``timeout``)."""
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(REPO, path)) as f:
        tasks = yaml.safe_load(f)
    task = next(t for t in tasks if action in t)
    templates = [v for v in task[action].values() if isinstance(v, str) and "{{" in v]
    templates += [v for k, v in task.items() if k not in (action, "name", "when") and isinstance(v, str) and "{{" in v]
    return templates, task.get("when")


PROBE_ARGS, PROBE_WHEN = role_task("roles/matrix/tasks/probe.yml", "vfio.migration.migration_probe")
GATHER_ARGS, dummy = role_task("roles/facts/tasks/main.yml", "vfio.migration.mdev_facts")
PROBE_TIMEOUT = "{{ vfio_migration_probe_task_timeout }}"
GATHER_TIMEOUT = "{{ vfio_migration_facts_timeout }}"

# before option_vars: each option a template of its role variable
GATHER_OPTIONS = ["{{ vfio_migration_sysfs_root }}", "{{ vfio_migration_host_root }}", "{{ vfio_migration_use_udev }}",
                  "{{ vfio_migration_check_vfio_capability }}", "{{ vfio_migration_query_qemu }}",
                  "{{ vfio_migration_facts_dir }}", "{{ vfio_migration_persist_facts }}"]
PROBE_OPTIONS = ["{{ ansible_facts.get('vfio_mdev', {}).get('sysfs_root', '/sys') }}",
                 "{{ vfio_migration_allow_non_sysfs }}", "{{ vfio_migration_probe_timeout }}"]
# and before that, persist_dir through a filter
GATHER_BEFORE = [t for t in GATHER_OPTIONS if "persist" not in t and "facts_dir" not in t] + [
    "{{ vfio_migration_facts_dir if vfio_migration_persist_facts | bool else omit }}"]

# the probe task before its action skipped an empty batch: a per-host conditional, and arguments
# that could name the facts directly
PROBE_ARGS_BEFORE = ["{{ vfio_migration_batches[inventory_hostname] }}", "{{ ansible_facts.vfio_mdev.sysfs_root }}",
                     "{{ vfio_migration_allow_non_sysfs }}", "{{ vfio_migration_probe_timeout }}"]

# the probe task before its action read the batch from the variable (batches_var)
PROBE_BATCH_TEMPLATE = "{{ vfio_migration_batches.get(inventory_hostname, []) }}"

# (label, templates, conditional)
CASES = [
    ("probe: as the role has it (its time limit)", PROBE_ARGS, PROBE_WHEN),
    ("probe: its options as templates too (before option_vars)", PROBE_OPTIONS + [PROBE_TIMEOUT], None),
    ("probe: and the batch through a template (before batches_var)", PROBE_OPTIONS + [PROBE_BATCH_TEMPLATE], None),
    ("probe: arguments and a when without filters (before)", PROBE_ARGS_BEFORE,
     "vfio_migration_batches.get(inventory_hostname, []) != []"),
    ("probe: the same, when with two filters (before that)", PROBE_ARGS_BEFORE,
     "vfio_migration_batches[inventory_hostname] | default([]) | length > 0"),
    ("gathering: as the role has it (its time limit)", GATHER_ARGS, None),
    ("gathering: its options as templates too (before option_vars)", GATHER_OPTIONS + [GATHER_TIMEOUT], None),
    ("gathering: persist_dir through the bool filter (before that)", GATHER_BEFORE + [GATHER_TIMEOUT], None),
    ("one template, no filter", ["{{ vfio_migration_probe_timeout }}"], None),
    ("one conditional, no filter", [], "inventory_hostname in vfio_migration_batches"),
]


def variables(targets=200, checks=48):
    batch = [{"id": "c%d" % j, "mdev_type": "nvidia-%d" % (256 + j % 4), "version": "v-%d" % j} for j in range(checks)]
    return {
        "inventory_hostname": "h1", "vfio_migration_batches": {"h%d" % i: batch for i in range(targets)},
        "ansible_facts": {"vfio_mdev": {"sysfs_root": "/sys"}}, "vfio_migration_allow_non_sysfs": False,
        "vfio_migration_probe_timeout": 10, "vfio_migration_sysfs_root": "/sys", "vfio_migration_host_root": "/",
        "vfio_migration_use_udev": True, "vfio_migration_check_vfio_capability": "auto",
        "vfio_migration_query_qemu": True, "vfio_migration_persist_facts": True,
        "vfio_migration_facts_dir": "/etc/ansible/facts.d", "vfio_migration_probe_task_timeout": 600,
        "vfio_migration_facts_timeout": 600,
    }


def measure(repeat=30, targets=200):
    """``{label: median CPU ms}`` of each case, each run in ``repeat`` forked children, ``targets`` batches."""
    from ansible.template import Templar, trust_as_template  # pylint: disable=import-outside-toplevel
    templar = Templar(loader=None, variables=variables(targets))
    # the main process has templated before it forks (play names, hosts patterns)
    templar.template(trust_as_template("{{ inventory_hostname }}"))
    templar.evaluate_conditional(trust_as_template("inventory_hostname is defined"))
    out = {}
    for label, templates, conditional in CASES:
        times = []
        for dummy in range(repeat):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through the pipe
                try:
                    t0 = time.process_time()
                    for source in templates:
                        templar.template(trust_as_template(source))
                    if conditional:
                        templar.evaluate_conditional(trust_as_template(conditional))
                    os.write(wfd, repr(time.process_time() - t0).encode())
                finally:
                    os._exit(0)  # pylint: disable=protected-access
            os.close(wfd)
            with os.fdopen(rfd, "rb") as f:
                got = f.read()
            os.waitpid(pid, 0)
            if not got:
                raise SystemExit("case %r failed in the child" % label)
            times.append(float(got))
        out[label] = round(statistics.median(times) * 1000, 2)
    return out


def markdown(res, repeat, targets=200):
    lines = ["CPU of templating in a freshly forked worker (median of %d forks, %d targets' batches):"
             % (repeat, targets), "",
             "| case | ms |", "|---|---:|"]
    lines += ["| %s | %.2f |" % (label, ms) for label, ms in res.items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--targets", type=int, default=200, help="hosts with a batch in vfio_migration_batches")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = measure(args.repeat, args.targets)
    print(json.dumps(res, indent=1) if args.json else markdown(res, args.repeat, args.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
