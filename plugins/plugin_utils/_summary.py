# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The terminal summary: what an operator reads in the minute before a maintenance window.

:func:`readiness_summary` returns a list of plain lines (no colour codes, no
control characters: strings from sysfs show them as ``\\xNN``), meant for an
``ansible.builtin.debug`` ``msg``, which every callback (default, ``yaml``,
``json``) and AWX print as they are. In order: the rolling maintenance
schedule when there is one (verdict, waves, why not ready), the verdict, the plan's counts,
hosts that could not be asked, one line per stranded item with its best
reason, what changed since the previous run, which parts ran (check mode
included) and where the reports are. Long lists are capped with a count.

The plan is read through its lists (``placements``, ``stranded``, ``cold``)
and each item's ``vm``/``device``, ``source_host``, ``mdev_type``,
``reasons`` or ``reason`` and ``details``, so the same lines fit a plan of
device instances and a plan of VMs.
"""

from ansible_collections.vfio.migration.plugins.plugin_utils import _matrix as M
from ansible_collections.vfio.migration.plugins.plugin_utils._views import _text, summary, unasked_hosts

DEFAULT_MAX_LINES = 10
# A line longer than this is cut (reasons can quote whole driver messages).
LINE_WIDTH = 240
INDENT = "  "


def _cut(text, width=LINE_WIDTH):
    text = " ".join(_text(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _capped(lines, cap, what):
    """At most ``cap`` lines, then one line with how many more and where they are."""
    if len(lines) <= cap:
        return lines
    return lines[:cap] + ["%s... and %d more %s" % (INDENT, len(lines) - cap, what)]


def _noun(plan):
    items = [i for field in ("placements", "stranded", "cold") for i in plan.get(field) or []]
    return "VMs" if any(i.get("vm") for i in items) else "instances"


def _best_detail(details):
    """The most promising target among a stranded item's per-target lines (``target: status ...``)."""
    best, rank = None, len(M.STATUS_ORDER)
    for line in details or []:
        words = _text(line).split(": ", 1)
        status = words[1].split(" ", 1)[0] if len(words) == 2 else ""
        r = M.STATUS_ORDER.index(status) if status in M.STATUS_ORDER else len(M.STATUS_ORDER)
        if best is None or r < rank:
            best, rank = line, r
    return best


def best_reason(item):
    """One reason for a stranded item: its first listed reason, sharpened by its best target."""
    reasons = [r for r in item.get("reasons") or [] if r]
    reason = _text(reasons[0] if reasons else item.get("reason")) or "no reason given"
    if reason.startswith("no compatible target"):
        detail = _best_detail(item.get("details"))
        if detail:
            reason += "; nearest: %s" % _text(detail)
    return reason


def _item_name(item):
    what = item.get("vm") or item.get("device")
    if not what:
        return "%s (whole host)" % _text(item.get("source_host"))
    where = "on %s" % _text(item.get("source_host"))
    kind = " %s" % _text(item.get("mdev_type")) if item.get("mdev_type") else ""
    return "%s%s %s" % (_text(what), kind, where)


def _schedule_lines(schedule, cap):
    """The rolling maintenance first: its verdict, assumptions, one line per wave and why not ready."""
    from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as ROLLING
    return ROLLING.summary_lines(schedule, max_lines=cap)


def _verdict_lines(matrix, plan, noun, schedule=None):
    if plan is None and schedule is not None:
        return []  # the schedule's verdict is the run's
    if plan is None:
        return ["NO DRAIN PLANNED: %d hosts checked; set vfio_migration_drain_hosts for a go/no-go verdict"
                % len(matrix["hosts"])]
    drain = ", ".join(_text(h) for h in plan.get("drain_hosts") or []) or "nothing"
    placed, stranded, cold = (len(plan.get(k) or []) for k in ("placements", "stranded", "cold"))
    total = placed + stranded
    if plan.get("ready"):
        head = "READY: draining %s - all %d %s have a place to go" % (drain, total, noun)
    else:
        head = "NOT READY: draining %s - %d of %d %s would be stranded" % (drain, stranded, total, noun)
    if schedule is not None:
        head = "Drain plan now: " + head
    lines = [_cut(head), "Plan: %d placed, %d stranded, %d cold (%s)" % (placed, stranded, cold, noun)]
    if plan.get("unknown_hosts"):
        lines.append(_cut("Not in the inventory: %s" % ", ".join(_text(h) for h in plan["unknown_hosts"])))
    if plan.get("collisions"):
        lines.append(_cut("Instance UUIDs already on a target: %s" % ", ".join(
            "%s (%s) on %s" % (_text(c.get("uuid"))[:8], _text(c.get("vm")), _text(c.get("target_host")))
            for c in plan["collisions"])))
    return lines


def _unasked_lines(matrix, cap):
    hosts = unasked_hosts(matrix)
    if not hosts:
        return ["Could not ask: none (every host answered)"]
    lines = ["Could not ask %d host%s:" % (len(hosts), "" if len(hosts) == 1 else "s")]
    lines += [INDENT + _cut("%s: %s%s" % (name, state, " - %s" % reason if reason else ""))
              for name, state, reason in hosts]
    return _capped(lines, cap + 1, "hosts (report.html, matrix.json)")


def _stranded_lines(plan, cap):
    stranded = (plan or {}).get("stranded") or []
    if not stranded:
        return []
    lines = ["Stranded:"] + [INDENT + _cut("%s: %s" % (_item_name(s), best_reason(s))) for s in stranded]
    return _capped(lines, cap + 1, "stranded (report.html)")


def _side(side):
    if not side:
        return "(none)"
    extra = [x for x in (side.get("evidence") if side.get("evidence") not in (None, "none") else None,
                         side.get("errno_name")) if x]
    return "%s%s" % (_text(side.get("status")), " (%s)" % ", ".join(_text(x) for x in extra) if extra else "")


def change_lines(changes):
    """One line per change, most telling first: versions, hosts, plan items, then cells."""
    lines = []
    for v in changes.get("versions") or []:
        lines.append("%s %s: %s -> %s" % (_text(v["host"]), _text(v["what"]), _text(v["before"]) or "(none)",
                                          _text(v["after"]) or "(none)"))
    hosts = changes.get("hosts") or {}
    lines += ["host appeared: %s" % _text(h) for h in hosts.get("appeared") or []]
    lines += ["host vanished: %s" % _text(h) for h in hosts.get("vanished") or []]
    lines += ["host %s: %s -> %s" % (_text(h["host"]), _text(h["before"]), _text(h["after"]))
              for h in hosts.get("state_changed") or []]
    plan = changes.get("plan") or {}
    for field, words in (("newly_stranded", "now stranded"), ("newly_placeable", "now placeable"),
                         ("appeared", "new in the plan"), ("vanished", "gone from the plan")):
        for item in plan.get(field) or []:
            lines.append("%s %s%s" % (_item_name(item), words,
                                      ": %s" % _text(item["reason"]) if item.get("reason") else ""))
    for item in plan.get("retargeted") or []:
        lines.append("%s now planned onto %s (was %s)"
                     % (_item_name(item), _text(item["after_target"]), _text(item["before_target"])))
    sources = changes.get("sources") or {}
    for what, rows in (("appeared", sources.get("appeared")), ("vanished", sources.get("vanished"))):
        lines += ["source %s/%s %s %s" % (_text(r["host"]), _text(r["parent"]), _text(r["mdev_type"]), what)
                  for r in rows or []]
    for c in changes.get("cells") or []:
        lines.append("%s/%s %s -> %s/%s: %s -> %s" % (
            _text(c["source_host"]), _text(c["source_parent"]), _text(c["mdev_type"]), _text(c["target_host"]),
            _text(c["target_parent"]) or "-", _side(c["before"]), _side(c["after"])))
    return [_cut(line) for line in lines]


def _change_lines(changes, cap, unchanged=False):
    if changes is None:
        return []
    if unchanged:
        return ["Changes: none - matrix.json is byte-identical to the last run's (changes.json keeps the comparison"
                " before it)"]
    if not changes.get("previous"):
        return ["Changes: no previous run to compare with"]
    count = changes.get("count", 0)
    since = _text(changes["previous"].get("generated")) or "the previous run"
    if not count:
        return ["Changes since %s: none" % since]
    lines = change_lines(changes)
    head = "Changes since %s: %d (%d cells)" % (since, count, changes.get("cells_changed", 0))
    shown = [INDENT + line for line in lines[:cap]]
    if count > len(shown):
        shown.append("%s... and %d more (changes.json)" % (INDENT, count - len(shown)))
    return [head] + shown


def _ran_lines(matrix, plan, check_mode, reports_written, report_dir, schedule=None):
    states = [h.get("state") for h in matrix["hosts"].values()]
    probed = sum(1 for h in matrix["hosts"].values() if h.get("probed"))
    made = ["matrix"] + (["plan"] if plan is not None else []) + (["rolling schedule"] if schedule is not None else [])
    parts = ["facts from %d of %d hosts" % (states.count("ok"), len(states)),
             "probe answered by %d" % probed, ", ".join(made[:-1]) + " and " + made[-1] if len(made) > 1 else made[0]]
    if reports_written:
        parts.append("reports written")
    elif check_mode:
        parts.append("reports not written (check mode)")
    else:
        parts.append("reports not written")
    lines = ["Ran%s: %s" % (" in check mode" if check_mode else "", ", ".join(parts))]
    if report_dir:
        where = "Reports: %s/report.html (matrix.json, matrix.csv, matrix.md, changes.json beside it)" \
            % _text(report_dir).rstrip("/")
        if not reports_written:
            where = "Reports would go to %s" % _text(report_dir)
        lines.append(_cut(where, LINE_WIDTH * 2))
    return lines


def readiness_summary(matrix, plan=None, changes=None, report_dir=None, reports_written=False,
                      check_mode=False, max_lines=DEFAULT_MAX_LINES, unchanged=False, schedule=None):
    """The summary as a list of plain lines (see the module docstring).

    ``unchanged``: this run's ``matrix.json`` is byte-identical to the last
    one, so the last comparison was kept (said instead of the changes).
    ``schedule`` (``_rolling.rolling_schedule``): its verdict, waves and why
    not ready come first, and the plan's verdict says it is the drain now.
    """
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError("max_lines must be a positive integer, not %r" % (max_lines,))
    if changes is not None and not isinstance(changes, dict):
        raise ValueError("changes must be the output of vfio.migration.matrix_changes or null")
    plan = plan or None
    noun = _noun(plan) if plan else "instances"
    lines = _schedule_lines(schedule, max_lines) if schedule is not None else []
    lines += _verdict_lines(matrix, plan, noun, schedule)
    lines += _unasked_lines(matrix, max_lines)
    lines += _stranded_lines(plan, max_lines)
    lines += _change_lines(changes, max_lines, bool(unchanged))
    lines += _ran_lines(matrix, plan, bool(check_mode), bool(reports_written), report_dir, schedule)
    return lines


def readiness_stats(matrix, plan=None, report_dir=None):
    """The run's outcome as data, for ``set_stats`` (AWX job artifacts, a workflow's next node).

    ``ready`` is null without a plan. Placements and stranded items keep only
    what a consumer acts on; every string from sysfs is shown as text. A drain
    host the inventory does not know is in ``unknown_hosts`` (it alone makes
    the plan not ready).
    """
    counts = summary(matrix, plan)
    out = {
        "ready": plan.get("ready") if plan else None,
        "drain_hosts": list((plan or {}).get("drain_hosts") or []),
        "unknown_hosts": [_text(h) for h in (plan or {}).get("unknown_hosts") or []],
        "status_counts": counts["status_counts"],
        "evidence_counts": counts["evidence_counts"],
        "hosts_not_asked": [{"host": h, "state": st, "reason": why} for h, st, why in unasked_hosts(matrix)],
        "placed": [], "stranded": [], "cold": [],
        "report_dir": report_dir,
    }
    for field, key in (("placements", "placed"), ("stranded", "stranded"), ("cold", "cold")):
        for item in (plan or {}).get(field) or []:
            rec = {k: _text(item.get(k)) for k in ("vm", "vm_uuid", "device", "mdev_type", "source_host",
                                                   "target_host", "cause") if item.get(k) is not None}
            if key == "stranded":
                rec["reason"] = _text(best_reason(item))
            out[key].append(rec)
    return out


def precheck_cases(matrix, plan):
    """One test case per planned item and per host that could not be asked: ``[{name, ok, message}]``.

    The precheck turns each into a task, so a CI run under the ``junit``
    callback shows a test case per VM (or instance): placed or moved cold
    passes, stranded fails with every reason.
    """
    cases = []
    for item in (plan or {}).get("placements") or []:
        cases.append({"name": "%s: placed" % _item_name(item), "ok": True,
                      "message": "goes to %s/%s" % (_text(item.get("target_host")),
                                                    _text(item.get("target_parent")) or "-")})
    for item in (plan or {}).get("cold") or []:
        cases.append({"name": "%s: moves cold" % _item_name(item), "ok": True,
                      "message": _text(item.get("reason")) or "shut off: moves cold"})
    for item in (plan or {}).get("stranded") or []:
        reasons = [r for r in item.get("reasons") or [] if r] or [item.get("reason")]
        why = [_text(r) for r in reasons] + ["  " + _text(d) for d in item.get("details") or []]
        cases.append({"name": "%s: stranded" % _item_name(item), "ok": False, "message": "\n".join(why)})
    for host in (plan or {}).get("unknown_hosts") or []:
        cases.append({"name": "host %s: not in the inventory" % _text(host), "ok": False,
                      "message": "a drain host the inventory does not know"})
    for name, state, reason in unasked_hosts(matrix):
        cases.append({"name": "host %s: could not be asked" % name, "ok": False,
                      "message": "%s%s" % (state, " - %s" % reason if reason else "")})
    return cases
