# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench callback: wall and CPU time per task, nothing else (cheap enough for the timed runs).

It implements no ``v2_runner_*`` method on purpose: ansible-core 2.19 gives
every callback that does its own deep copy of each result, which would add
the bench's own cost to the run it measures (``bench_count`` does that, in a
separate counting run). Writes JSON to ``$BENCH_TASKS_OUT`` at the end.

CPU per task (``cpu``): the controller's own CPU plus that of every worker
and module process it has reaped (``os.times()``), plus, when
``$BENCH_EMULATOR_PID`` names them (comma separated), the FUSE emulators' CPU (``/proc``; also
apart, as ``emulator_cpu``), all taken at the task's start and end. The
controller's main process alone (the strategy, templating for the queue,
result handling, callbacks) is ``controller_cpu``. Finished workers are reaped at each
boundary (``multiprocessing.active_children()``), so a task's processes are
counted with it; a worker still exiting at the boundary counts with the next
task. ``controller_rss_mib`` is the main process's resident size when the task
starts: every worker is a fork of it, and a fork costs in proportion (page
tables copied, then torn down). Other people's processes on the machine do not count, which makes CPU
ratios steadier than wall-time ratios on a shared machine. Under
``ansible_connection: ssh`` the module processes are the sshd's children,
not the controller's: ``cpu`` then holds the controller side only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: bench_tasks
type: aggregate
short_description: wall time of each task (vfio.migration bench)
description:
  - Writes the wall time of every task to the file named by C(BENCH_TASKS_OUT).
requirements:
  - enable in callbacks_enabled
"""

import json
import multiprocessing
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tasks"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.t0 = time.monotonic()
        self.tasks = []
        self.current = None
        self.seen = set()
        pids = (os.environ.get("BENCH_EMULATOR_PID") or "").split(",")  # one or more emulators
        self.emulators = ["/proc/%s/stat" % pid for pid in pids if pid.isdigit()]

    def _cpu(self):
        """CPU seconds so far: (this process and its reaped descendants, the emulator, this process alone)."""
        multiprocessing.active_children()  # reaps the workers that have finished
        t = os.times()
        emulator = 0.0
        for stat in self.emulators:
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                emulator += (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
            except (OSError, IndexError, ValueError):
                pass
        return t.user + t.system + t.children_user + t.children_system, emulator, t.user + t.system

    @staticmethod
    def _rss_mib():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024.0, 1)
        except (OSError, ValueError):
            pass
        return None

    def _close(self):
        if self.current is not None:
            self.current["seconds"] = round(time.monotonic() - self.current.pop("_start"), 4)
            (own0, emu0, main0), (own1, emu1, main1) = self.current.pop("_cpu"), self._cpu()
            self.current["cpu"] = round((own1 - own0) + (emu1 - emu0), 4)
            self.current["emulator_cpu"] = round(emu1 - emu0, 4)
            self.current["controller_cpu"] = round(main1 - main0, 4)  # the main process alone (strategy, results)
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task._uuid in self.seen:  # meta tasks announce themselves once per host
            return
        self.seen.add(task._uuid)
        self._close()
        self.current = {"name": task.get_name(), "action": task.action, "run_once": bool(task.run_once),
                        "controller_rss_mib": self._rss_mib(), "_start": time.monotonic(), "_cpu": self._cpu()}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        out = os.environ.get("BENCH_TASKS_OUT")
        if out:
            with open(out, "w") as f:
                json.dump({"seconds": round(time.monotonic() - self.t0, 4), "tasks": self.tasks}, f, indent=1)
