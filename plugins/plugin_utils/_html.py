# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML report: one self-contained page (inline CSS, no script, nothing fetched).

Built from the views in ``_views.py``; every string is escaped (text and
attributes). The page puts the decision first: the verdict, what changed
since the previous run, hosts that could not be asked, the rolling
maintenance schedule (when one was computed: why not ready, the wave table,
each wave's placements folded) and the drain plan; then a host x host
overview, then one collapsible grid per type.

Lists that grow with the fleet stay short at the top: hosts that could not be
asked past UNASKED_OPEN fold, a stranded item's per-target lines past
DETAILS_OPEN are grouped by reason (the many targets that share one are one
line), the changes past CHANGES_OPEN fold and past CHANGE_LINES are counted,
and the verdict names DRAIN_NAMES drain hosts and counts the rest.
"""

import html

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils._views import (
    EVIDENCES, POLICY_SUFFIX, REPORT_SCHEMA_VERSION, SELF, STATUS_COLOURS, STATUS_LABELS,
    STATUS_MEANINGS, TITLE_LINES, _TEXT_COLOURS, _basis_text, _label, _plan_or_none, _status_token, _text,
    _too_big, check_inputs, class_basis, class_summary, host_overview, host_reach, sorted_classes, source_rows,
    summary, too_big_note, type_grids, unasked_hosts)
from ansible_collections.vfio.migration.plugins.plugin_utils._summary import change_lines
from ansible_collections.vfio.migration.plugins.plugin_utils import _rolling as ROLLING

# At most this many change lines on the page (the first CHANGES_OPEN shown, the rest folded);
# changes.json has them all.
CHANGE_LINES = 200
CHANGES_OPEN = 8
# A stranded item's per-target lines shown as they are; beyond this, grouped by reason (this many groups open).
DETAILS_OPEN = 6
# At most this many groups on the page (matrix.json's plan has every target's line).
GROUPS_MAX = 60
# Target names listed in a group of targets that share a reason.
GROUP_NAMES = 8
# Hosts that could not be asked, listed open; the rest are folded.
UNASKED_OPEN = 10
# Drain hosts named in the verdict line; the rest are counted.
DRAIN_NAMES = 10
# The wave table shows this many waves; the rest are folded below it (every wave keeps its own section).
WAVES_OPEN = 40


def esc(value):
    """Escape any value for HTML text and attribute values (None is empty)."""
    return html.escape(_text(value), quote=True)


def _attrs(**attrs):
    """`` name="value"`` pairs, escaped, in name order (``data_x`` becomes ``data-x``)."""
    return "".join(' %s="%s"' % (name.replace("_", "-"), esc(value)) for name, value in sorted(attrs.items()))


def _el(tag, content="", **attrs):
    """An element with escaped attributes around already-safe ``content``."""
    return "<%s%s>%s</%s>" % (tag, _attrs(**attrs), content, tag)


def _css():
    """The page's style sheet: status colours from STATUS_COLOURS."""
    rules = [
        ":root{color-scheme:light}",
        "body{margin:0;background:#fff;color:#1f2328;"
        "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}",
        "header{padding:14px 24px;background:#24292f;color:#fff;display:flex;align-items:center;gap:24px}",
        "header h1{font-size:20px;margin:0}header .meta{color:#c9d1d9;font-size:13px}",
        "main{padding:8px 24px 32px}",
        "h2{font-size:17px;margin:22px 0 8px;padding-bottom:3px;border-bottom:1px solid #d0d7de}",
        "h3{font-size:15px;margin:16px 0 4px}",
        "p.note{color:#57606a;margin:4px 0 8px}",
        "code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;background:#f6f8fa;"
        "padding:1px 4px;border-radius:3px}",
        "table.data{border-collapse:collapse;margin:4px 0 8px}",
        "table.data th,table.data td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}",
        "table.data th{background:#f6f8fa}",
        "table.data td.num{text-align:right}",
        "table.data ul{margin:2px 0;padding-left:18px}",
        "table.grid{border-collapse:separate;border-spacing:2px;margin:4px 0 10px}",
        "table.grid th{font-size:12px;font-weight:600;padding:2px 5px;white-space:nowrap}",
        "table.grid th.src{text-align:right}",
        "table.grid th.tgt{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;"
        "vertical-align:bottom;max-height:120px;overflow:hidden;text-overflow:ellipsis}",
        "table.grid th.corner{font-weight:400;color:#57606a;vertical-align:bottom;text-align:right}",
        "th.down{color:#b42318}",
        ".cell,.ocell,.swatch{min-width:52px;height:26px;padding:0 4px;text-align:center;border-radius:3px;"
        "font:600 12px/26px ui-monospace,'DejaVu Sans Mono',monospace;box-sizing:border-box}",
        ".swatch{display:inline-block;vertical-align:middle}",
        ".ev-policy{background-image:repeating-linear-gradient(-45deg,rgba(0,0,0,.22) 0 3px,transparent 3px 7px);"
        "outline:2px dashed #1f2328;outline-offset:-3px}",
        ".st-unknown{background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.5) 0 4px,"
        "transparent 4px 8px)}",
        ".st-self{font-weight:400}",
        ".chips{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}",
        ".chip{display:flex;align-items:center;gap:6px;border:1px solid #d0d7de;border-radius:6px;padding:4px 8px}",
        ".chip b{font-size:16px}",
        "dl.legend{display:grid;grid-template-columns:repeat(2,max-content minmax(0,560px));gap:4px 12px;"
        "align-items:center;margin:6px 0}",
        "dl.legend dt,dl.legend dd{margin:0}",
        ".badge{display:inline-block;padding:10px 26px;border-radius:8px;color:#fff;"
        "font:700 30px/1 system-ui,'DejaVu Sans',sans-serif;letter-spacing:.06em}",
        ".badge.small{font-size:15px;padding:5px 12px}",
        ".badge.ready{background:#2e9d4f}.badge.not-ready{background:#d64541}",
        ".state-ok{color:#1a7f37;font-weight:600}.state-bad{color:#b42318;font-weight:600}",
        ".badge.none{background:#57606a;font-size:22px}",
        "p.decision{font-size:17px;margin:10px 0}p.decision .counts{margin-left:12px}",
        "div.unasked,div.changes{border-left:4px solid #f08c00;padding:2px 12px;margin:8px 0;background:#fff8ec}",
        "div.changes{border-color:#7fa7d9;background:#f3f8ff}",
        "div.unasked ul,div.changes ul{margin:2px 0;padding-left:18px}",
        "details{margin:6px 0;border:1px solid #d0d7de;border-radius:6px;padding:4px 10px}",
        "details>summary{cursor:pointer;font-size:14px;padding:2px 0}",
        "details.more{border:0;padding:0 0 0 18px;margin:2px 0}",
        "table.data td.st-compatible,table.data td.st-incompatible,table.data td.st-unsupported{font-weight:600}",
        "section.rolling{margin:10px 0 18px}",
        "div.why{border-left:4px solid #d64541;padding:2px 12px;margin:8px 0;background:#fff5f5}",
        "div.assume{border-left:4px solid #f08c00;padding:2px 12px;margin:8px 0;background:#fff8ec}",
        "div.why ul,div.assume ul{margin:2px 0;padding-left:18px}",
        "h4{font-size:14px;margin:10px 0 4px}",
        "table.waves td.wave{text-align:right;font-weight:600}",
        "table.waves td.hosts{font-weight:600}",
        "table.waves td.down{color:#b42318}",
        ".basis{display:inline-block;white-space:nowrap;font-size:11px;padding:0 5px;border-radius:3px;background:#eaeef2;"
        "color:#3d444d;margin-left:4px}",
        ".basis.assumed{background:#f08c00;color:#1f2328}",
        "div.dev+div.dev{margin-top:4px;padding-top:4px;border-top:1px dotted #d0d7de}",
        "span.ev{display:block;color:#57606a;font-size:12px}",
    ]
    for status, colour in sorted(STATUS_COLOURS.items()):
        rules.append(".st-%s{background-color:%s;color:%s}" % (status, colour, _TEXT_COLOURS[status]))
    return "\n".join(rules)


def _swatch(status, evidence="none"):
    """A legend sample: looks like a grid cell but carries no data attributes."""
    classes = "swatch st-%s ev-%s" % (_status_token(status), evidence)
    return _el("span", esc(_label(status, evidence)), **{"class": classes, "aria_hidden": "true"})


def _html_version(c):
    """A class's version as HTML: the version in code, or what stands in for it."""
    basis = _basis_text(class_basis(c))
    return esc(basis) if basis else _el("code", esc(c["version"]))


def _grid_cell(src, target, mdev_type, cell):
    status, evidence = cell["status"], cell["evidence"]
    details = cell["details"]
    if len(details) > TITLE_LINES:
        details = details[:TITLE_LINES] + ["... %d more" % (len(details) - TITLE_LINES)]
    title = "%s -> %s (%s): %s%s\n%s" % (
        _text(src), _text(target), _text(mdev_type), status,
        " (policy, not driver-verified)" if evidence == "policy" else "", "\n".join(details))
    return _el("td", esc(_label(status, evidence)), **{
        "class": "cell st-%s ev-%s" % (_status_token(status), evidence if evidence in EVIDENCES else "none"),
        "data_source": src, "data_target": target, "data_type": mdev_type, "data_status": status,
        "data_evidence": evidence, "title": title})


def _html_grid(matrix, mdev_type, sources, cells):
    targets = sorted(matrix["hosts"])
    head = [_el("th", "source \\ target", **{"class": "corner"})]
    for t in targets:
        h = matrix["hosts"][t]
        down = h.get("state") != "ok"
        head.append(_el("th", esc(t), **{"class": "tgt down" if down else "tgt", "scope": "col",
                                         "title": "%s: %s%s" % (_text(t), _text(h.get("state")),
                                                                " - %s" % h["reason"] if h.get("reason") else "")}))
    rows = ["<thead><tr>%s</tr></thead>" % "".join(head), "<tbody>"]
    for src in sources:
        tds = [_grid_cell(src, t, mdev_type, cells[(src, t)]) for t in targets]
        rows.append("<tr>%s%s</tr>" % (_el("th", esc(src), **{"class": "src", "scope": "row"}), "".join(tds)))
    rows.append("</tbody>")
    classes = [c for c in sorted_classes(matrix) if c["mdev_type"] == mdev_type]
    note = "; ".join("%s %s on %s" % (esc(c["id"]), _html_version(c), esc(", ".join(c["sources"])))
                     for c in classes) or "no source can migrate this type"
    return "\n".join([_el("h3", "Type " + _el("code", esc(mdev_type) or "(none)"),
                          **{"data_grid_type": mdev_type}),
                      _el("p", "Classes: " + note, **{"class": "note"}),
                      _el("table", "\n".join(rows), **{"class": "grid", "data_type": mdev_type})])


def _html_class_summary(matrix):
    head = "".join(_el("th", h) for h in ("class", "type", "version", "sources")) + "".join(
        _el("th", _swatch(s) + " " + esc(s)) for s in E.STATUSES)
    rows = []
    for c in class_summary(matrix):
        basis = _basis_text(c["basis"])
        version = esc(basis) if basis else _el("code", esc(c["version"]))
        counts = "".join(_el("td", str(c["targets"].get(s, 0)), **{"class": "num", "data_status": s,
                                                                   "data_class": c["class"]})
                         for s in E.STATUSES)
        rows.append("<tr>%s%s%s%s%s</tr>" % (
            _el("td", esc(c["class"])), _el("td", _el("code", esc(c["mdev_type"]))), _el("td", version),
            _el("td", str(c["sources"]), **{"class": "num"}), counts))
    return "\n".join([
        _el("p", "%s; instead, how many target hosts end in each status for each version class (best over "
                 "the target's parents)." % too_big_note(matrix), **{"class": "note"}),
        _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
            **{"class": "data summary"})])


def _html_summary(summ):
    chips = []
    for s in E.STATUSES:
        chips.append(_el("div", _swatch(s) + _el("b", str(summ["status_counts"].get(s, 0))) + " " + esc(s),
                         **{"class": "chip"}))
    states = ", ".join("%s: %d" % (esc(s), n) for s, n in sorted(summ["host_states"].items())) or "none"
    return "\n".join([
        _el("h2", "Summary"),
        _el("p", "%d hosts (%s), %d version classes, %d source x target cells (by parent)."
            % (summ["host_count"], states, summ["class_count"], summ["cells"])),
        _el("div", "".join(chips), **{"class": "chips"}),
    ])


def _html_legend():
    items = []
    for s in E.STATUSES + (SELF,):
        items.append(_el("dt", _swatch(s)) + _el("dd", _el("b", esc(s)) + ": " + esc(STATUS_MEANINGS[s])))
    items.append(_el("dt", _swatch(E.COMPATIBLE, "policy")) + _el(
        "dd", _el("b", "policy evidence") + ": hatched with a dashed outline and a trailing %s - the verdict rests "
        "on policy rules (same type, driver versions, stack minimums), not on the driver's own answer"
        % esc(POLICY_SUFFIX)))
    items.append(_el("dt", "evidence") + _el(
        "dd", "each cell names what decided it: " + _el("b", "driver") + " (the driver's attribute answered), " +
        _el("b", "vfio") + " (the kernel says a device cannot migrate at all), " + _el("b", "qemu") +
        " (QEMU blocks the migration), " + _el("b", "policy") + " (the operator's rules or stack minimums), "
        "or none; a cell lists every reason that applies, the deciding ones first"))
    return "\n".join([
        _el("h2", "Legend"),
        _el("p", "Each grid cell is the best status over the source's and the target's parents for one source "
                 "host, type and target host. Hover a cell for the parents, errno and message.",
            **{"class": "note"}),
        _el("dl", "\n".join(items), **{"class": "legend"})])


def _html_hosts(matrix):
    rows = []
    for name, h in sorted(matrix["hosts"].items()):
        state = h.get("state")
        rows.append("<tr>%s%s%s%s</tr>" % (
            _el("td", esc(name)), _el("td", esc(state), **{"class": "state-ok" if state == "ok" else "state-bad"}),
            _el("td", "yes" if h.get("probed") else "no"), _el("td", esc(h.get("reason")))))
    head = "".join(_el("th", h) for h in ("host", "state", "probed", "reason"))
    return "\n".join([_el("h2", "Hosts"),
                      _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
                          **{"class": "data hosts"})])


def _html_table(header, rows, cls):
    head = "".join(_el("th", h) for h in header)
    body = "\n".join("<tr>%s</tr>" % "".join(row) for row in rows)
    return _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, body), **{"class": "data " + cls})


def _badge(ready, small=False, prefix=""):
    cls = "badge %s%s" % ("ready" if ready else "not-ready", " small" if small else "")
    return _el("span", prefix + ("READY" if ready else "NOT READY"),
               **{"class": cls, "data_ready": "true" if ready else "false"})


def _grouped_details(details):
    """Per-target lines (``target: why``) grouped by their reason: ``[(why, [targets])]``, in first-seen order.

    A line that is not ``target: why`` is its own group without a target.
    """
    groups, order = {}, []
    for line in details:
        line = _text(line)
        target, sep, why = line.partition(": ")
        if not sep:
            target, why = None, line
        if why not in groups:
            groups[why] = []
            order.append(why)
        if target is not None:
            groups[why].append(target)
    return [(why, groups[why]) for why in order]


def _detail_group(why, targets):
    if len(targets) == 1:
        return _el("li", esc("%s: %s" % (targets[0], why)))
    if not targets:
        return _el("li", esc(why))
    names = ", ".join(targets[:GROUP_NAMES])
    if len(targets) > GROUP_NAMES:
        names += " and %d more" % (len(targets) - GROUP_NAMES)
    return _el("li", _el("b", "%d target hosts" % len(targets)) + ": " + esc(why) + " "
               + _el("span", "(" + esc(names) + ")", **{"class": "ev"}))


def _stranded_why(s):
    """Every reason of a stranded item: its reasons (or reason), then why each target host cannot take it.

    Up to DETAILS_OPEN per-target lines are listed as they are; beyond that the
    targets that share a reason are one line (with how many and their first
    names), and groups past DETAILS_OPEN fold, so a VM stranded in a fleet of
    1,000 hosts keeps every distinct reason in a few lines (matrix.json's plan
    has every target's line).
    """
    reasons = [r for r in s.get("reasons") or [] if r] or [s.get("reason")]
    head = "<br>".join(esc(r) for r in reasons)
    details = s.get("details") or []
    if not details:
        return head
    if len(details) <= DETAILS_OPEN:
        return head + _el("ul", "".join(_el("li", esc(d)) for d in details))
    groups = sorted(_grouped_details(details), key=lambda g: len(g[1]))  # the rare reasons, most telling, first
    items = [_detail_group(why, targets) for why, targets in groups]
    out = head + _el("ul", "".join(items[:DETAILS_OPEN]), **{"data_targets": len(details)})
    folded = items[DETAILS_OPEN:GROUPS_MAX]
    if folded:
        left = len(items) - DETAILS_OPEN - len(folded)
        tail = _el("li", "... and %d more reasons in matrix.json's plan" % left) if left > 0 else ""
        out += _details("%d more reasons" % (len(items) - DETAILS_OPEN), _el("ul", "".join(folded) + tail),
                        **{"class": "more"})
    return out


def _item_cell(item):
    """The thing being moved: a VM when the plan names one, else the device."""
    if item.get("vm"):
        uuid = " " + _el("code", esc(item.get("vm_uuid"))) if item.get("vm_uuid") else ""
        return _el("td", esc(item.get("vm")) + uuid)
    return _el("td", _el("code", esc(item.get("device"))) if item.get("device") else "(whole host)")


def _devices_cell(item):
    """The devices a VM moves, one per line: type and instance (or function)."""
    devs = item.get("devices") or []
    if not devs or not item.get("vm"):  # an instance on its own: the first column names it
        return _el("td", esc(item.get("mdev_type")))
    return _el("td", "<br>".join("%s %s" % (esc(d.get("mdev_type") or d.get("kind")), _el("code", esc(d.get("id"))))
                                 for d in devs))


def _targets_cell(item):
    """Where each device goes: parent, instance to use or create (a new UUID is said so)."""
    out = []
    for d in item.get("target_devices") or []:
        what = {"use": "use free", "create": "create", "assign": "assign"}.get(d.get("action"), d.get("action"))
        note = " (UUID changes)" if d.get("uuid_changes") else ""
        out.append("%s: %s %s%s" % (esc(d.get("target_parent")), esc(what), _el("code", esc(d.get("device"))), note))
    return _el("td", "<br>".join(out) or esc(item.get("target_parent")))


def _html_plan(plan):
    """The drain plan: stranded first (with every reason), then placements, then cold moves."""
    out = []
    if plan is None:
        return ""
    placements, stranded, cold = (plan.get(k) or [] for k in ("placements", "stranded", "cold"))
    if plan.get("unknown_hosts"):
        out.append(_el("p", "Not in the inventory: " + esc(", ".join(_text(h) for h in plan["unknown_hosts"])),
                       **{"class": "state-bad"}))
    out.append(_el("h3", "Stranded (%d)" % len(stranded), **{"id": "stranded"}))
    if stranded:
        rows = [[_item_cell(s), _devices_cell(s), _el("td", esc(s.get("source_host"))),
                 _el("td", esc(s.get("cause"))), _el("td", _stranded_why(s))] for s in stranded]
        out.append(_html_table(("moves", "devices", "source host", "cause", "why not"), rows, "stranded"))
    else:
        out.append(_el("p", "None.", **{"class": "note"}))
    out.append(_el("h3", "Placements (%d)" % len(placements), **{"id": "placements"}))
    if placements:
        out.append(_html_table(
            ("moves", "devices", "source host", "target host", "target devices", "room after"),
            [[_item_cell(p), _devices_cell(p), _el("td", esc(p.get("source_host"))),
              _el("td", esc(p.get("target_host"))), _targets_cell(p),
              _el("td", esc(p.get("target_free_after")), **{"class": "num"})]
             for p in placements], "placements"))
    else:
        out.append(_el("p", "None.", **{"class": "note"}))
    if cold or "cold" in plan:
        out.append(_el("h3", "Cold moves (%d)" % len(cold), **{"id": "cold"}))
        if cold:
            out.append(_html_table(("moves", "devices", "source host", "possible targets", "note"),
                                   [[_item_cell(c), _devices_cell(c), _el("td", esc(c.get("source_host"))),
                                     _el("td", esc(", ".join(_text(t) for t in c.get("target_hosts") or [])
                                                   or c.get("target_host") or "none")),
                                     _el("td", esc(c.get("reason")))]
                                    for c in cold], "cold"))
        else:
            out.append(_el("p", "None.", **{"class": "note"}))
    if plan.get("collisions"):
        out.append(_el("h3", "Instance UUIDs already on a target (%d)" % len(plan["collisions"]),
                       **{"id": "collisions"}))
        out.append(_html_table(("UUID", "VM", "source host", "target host", "held by"),
                               [[_el("td", _el("code", esc(c.get("uuid")))), _el("td", esc(c.get("vm"))),
                                 _el("td", esc(c.get("source_host"))), _el("td", esc(c.get("target_host"))),
                                 _el("td", esc(c.get("held_by") or "a stale %s instance" % _text(c.get("mdev_type"))))]
                                for c in plan["collisions"]], "collisions"))
    if plan.get("free_instances"):
        out.append(_el("p", "%d instance(s) on the drained hosts belong to no VM and are not planned: %s" % (
            len(plan["free_instances"]), esc(", ".join(_text(f.get("device")) for f in plan["free_instances"]))),
            **{"class": "note", "id": "free-instances"}))
    return "\n".join(out)


def _basis_chips(kinds):
    """What placements rest on, as small labels; an assumption stands out."""
    return "".join(_el("span", esc(k), **{"class": "basis assumed" if k == "assumed" else "basis"})
                   for k in kinds)


def _schedule_item_why(item):
    """Why a VM must be shut down: its reasons, then the per-host lines (folded when long)."""
    reasons = [r for r in item.get("reasons") or [] if r] or [item.get("reason") or item.get("cause")]
    head = "<br>".join(esc(r) for r in reasons)
    details = item.get("details") or []
    if not details:
        return head
    lines = _el("ul", "".join(_el("li", esc(d)) for d in details))
    if len(details) > 3:
        lines = _details("per host (%d)" % len(details), lines, **{"class": "more"})
    return head + lines


def _html_schedule_why(schedule):
    """Why the schedule is not ready, in what an operator can do: which VMs to shut down or move cold, in which
    wave and why; the room that would let them move live, and where; the hosts that cannot be planned."""
    if schedule["ready"]:
        return ""
    out = [_el("h4", "Why not ready"),
           _el("p", "No order of waves moves every running VM live. To go ahead: shut these VMs down (or move them "
                    "cold) for their host's wave, or add the room named below on one of the hosts listed.")]
    if schedule["unknown_hosts"]:
        out.append(_el("h4", "Hosts that cannot be planned (%d)" % len(schedule["unknown_hosts"])))
        out.append(_html_table(("host", "why"), [[_el("td", esc(u.get("host"))), _el("td", esc(u.get("reason")))]
                                                 for u in schedule["unknown_hosts"]], "rolling-unknown"))
    if schedule["must_stop"]:
        out.append(_el("h4", "VMs to shut down or move cold (%d)" % len(schedule["must_stop"]),
                       **{"id": "rolling-must-stop"}))
        rows = [[_el("td", str(x.get("wave")), **{"class": "num"}), _item_cell(x), _devices_cell(x),
                 _el("td", esc(x.get("source_host"))), _el("td", esc(x.get("cause"))),
                 _el("td", _schedule_item_why(x))] for x in schedule["must_stop"]]
        out.append(_html_table(("wave", "VM", "devices", "on host", "cause", "why"), rows, "must-stop"))
    if schedule["capacity"]:
        out.append(_el("h4", "Or add room, so they move live (%d)" % len(schedule["capacity"]),
                       **{"id": "rolling-capacity"}))
        rows = [[_el("td", str(c.get("wave")), **{"class": "num"}), _el("td", esc(c.get("vm"))),
                 _el("td", esc(c.get("source_host"))),
                 _el("td", esc(", ".join("%d x %s" % (n, _text(t)) for t, n in sorted((c.get("needs") or {}).items())))),
                 _el("td", esc(", ".join(_text(h) for h in c.get("hosts") or [])))]
                for c in schedule["capacity"]]
        out.append(_html_table(("wave", "VM", "from", "room needed (all on one host)", "on one of these hosts"),
                               rows, "capacity"))
    return _el("div", "\n".join(out), **{"class": "why", "id": "rolling-why"})


def _html_assumption_note(schedule):
    if not schedule["rests_on_assumptions"]:
        return ""
    rules = sorted(set(_text(a.get("assumption")) for a in schedule["assumptions"]))
    return _el("div", _el("p", _el("b", "Rests on %s" % _plural(len(schedule["assumptions"]), "assumption"))
                          + " (a driver version no host runs yet, per target parent below): " + esc("; ".join(rules))),
               **{"class": "assume", "id": "rolling-assumes"})


def _placement_line(p):
    """``vm: source -> target (parents)`` for the wave table."""
    parents = ", ".join(_text(x) for x in p.get("target_parents") or [])
    return "%s: %s &rarr; %s%s" % (_el("b", esc(p.get("vm") or p.get("device"))), esc(p.get("source_host")),
                                   esc(p.get("target_host")), " (%s)" % esc(parents) if parents else "")


def _wave_row(schedule, w):
    placements = w.get("placements") or []
    moved = "<br>".join(_placement_line(p) for p in placements) or "-"
    down = "<br>".join(esc(ROLLING._what(x)) for x in (w.get("blocked") or []) + (w.get("stopped") or [])) or "-"
    off = esc(", ".join(_text(c.get("vm") or c.get("device")) for c in w.get("stays_off") or [])) or "-"
    kinds = sorted({k for p in placements for k in p.get("basis") or []})
    assumed = ROLLING.wave_assumptions(schedule, w["wave"])
    rests = _basis_chips(kinds) or "-"
    if assumed:
        rests += " " + _plural(len(assumed), "assumption")
    after = "<br>".join("%s: %s" % (esc(h), esc(ROLLING._after_text(a))) for h, a in sorted((w.get("after") or {}).items()))
    return "<tr%s>%s</tr>" % (_attrs(data_wave=w["wave"]), "".join([
        _el("td", str(w["wave"]), **{"class": "wave"}), _el("td", esc(", ".join(w["hosts"])), **{"class": "hosts"}),
        _el("td", moved), _el("td", down, **({"class": "down"} if down != "-" else {})), _el("td", off),
        _el("td", rests), _el("td", after or "-")]))


def _html_wave_table(schedule):
    head = "".join(_el("th", h) for h in ("wave", "hosts drained together", "VMs moved live (VM: from &rarr; to "
                                          "(target parents))", "shut down for the wave", "shut off (stay off)",
                                          "rests on", "after the upgrade"))
    waves = schedule["waves"]
    if not waves:
        return _el("p", "No wave: no host to upgrade could be planned.", **{"class": "note"})

    def table(rows, **attrs):
        return _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
                   **dict({"class": "data waves"}, **attrs))

    rows = [_wave_row(schedule, w) for w in waves]
    out = [table(rows[:WAVES_OPEN], id="waves")]
    if len(rows) > WAVES_OPEN:
        out.append(_details("%d more waves" % (len(rows) - WAVES_OPEN), table(rows[WAVES_OPEN:]), **{"class": "more"}))
    return "\n".join(out)


def _target_devices_cell(p):
    """Each device: source instance, where it goes (parent, action, instance), its basis and evidence."""
    out = []
    for d in p.get("target_devices") or []:
        what = {"use": "use free", "create": "create", "assign": "assign"}.get(d.get("action"), d.get("action"))
        line = "%s %s &rarr; %s: %s %s%s" % (
            esc(d.get("mdev_type")), _el("code", esc(d.get("source"))), esc(d.get("target_parent")), esc(what),
            _el("code", esc(d.get("device"))), " (UUID changes)" if d.get("uuid_changes") else "")
        line += _basis_chips([d.get("basis")] if d.get("basis") else [])
        if d.get("reference"):
            line += " " + esc("as %s answered" % _text(d["reference"]))
        if d.get("evidence"):
            line += _el("span", esc(d["evidence"]), **{"class": "ev"})
        out.append(_el("div", line, **{"class": "dev"}))
    return _el("td", "".join(out) or esc(", ".join(_text(x) for x in p.get("target_parents") or [])))


def _moved_before(p):
    """Where a VM placed again came from before the first wave, and which of its moves this is."""
    if p.get("origin_host") == p.get("source_host"):
        return ""
    return " (from %s, move %s)" % (esc(p.get("origin_host")), esc(p.get("move")))


def _room_after(p):
    """What each target parent can still take of the VM's type once the whole VM is placed."""
    room = {}
    for d in p.get("target_devices") or []:
        room[_text(d.get("target_parent"))] = d.get("room_after")
    return ", ".join("%s: %s" % (parent, _text(n)) for parent, n in sorted(room.items()))


def _html_wave_section(schedule, w):
    """One wave, folded: its placements with every device, the VMs it shuts down and the assumptions it rests on."""
    placements = w.get("placements") or []
    stops = (w.get("blocked") or []) + (w.get("stopped") or [])
    assumed = ROLLING.wave_assumptions(schedule, w["wave"])
    head = "Wave %d: %s - %s move" % (w["wave"], esc(", ".join(w["hosts"])), _plural(len(placements), "VM"))
    if stops:
        head += ", %s shut down" % _plural(len(stops), "VM")
    if assumed:
        head += "; rests on %s" % _plural(len(assumed), "assumption")
    body = []
    if placements:
        rows = [[_item_cell(p), _el("td", esc(p.get("source_host")) + _moved_before(p)),
                 _el("td", esc(p.get("target_host"))), _target_devices_cell(p),
                 _el("td", esc(_room_after(p)), **{"class": "num"})]
                for p in placements]
        body.append(_html_table(("VM", "from host", "to host", "devices (source &rarr; target parent: action "
                                 "instance; basis)", "room after"), rows, "wave-placements"))
    else:
        body.append(_el("p", "No running VM to move.", **{"class": "note"}))
    if stops:
        body.append(_el("h4", "Shut down for this wave (%d)" % len(stops)))
        body.append(_html_table(("VM", "devices", "on host", "cause", "why"),
                                [[_item_cell(x), _devices_cell(x), _el("td", esc(x.get("source_host"))),
                                  _el("td", esc(x.get("cause"))), _el("td", _schedule_item_why(x))] for x in stops],
                                "wave-stops"))
    if assumed:
        body.append(_el("h4", "Assumptions this wave rests on"))
        body.append(_el("ul", "".join(_el("li", esc("%s from driver %s on %s/%s (driver %s after the upgrade): %s" % (
            _text(a.get("mdev_type")), _text(a.get("source_driver")), _text(a.get("target_host")),
            _text(a.get("target_parent")), _text(a.get("target_driver")), _text(a.get("assumption"))))) for a in assumed)))
    if w.get("stays_off"):
        body.append(_el("p", "Shut off, staying on their host: %s" % esc(", ".join(
            _text(c.get("vm") or c.get("device")) for c in w["stays_off"])), **{"class": "note"}))
    return _details(head, "\n".join(body), **{"data_wave_section": w["wave"], "id": "wave-%d" % w["wave"]})


def _html_schedule(schedule):
    """The rolling maintenance: why not ready, the wave table, each wave folded, the assumptions, collisions."""
    if schedule is None:
        return ""
    solver = schedule["solver"]
    how = "Solver %s (%s%s)" % (_text(solver.get("used")), _text(solver.get("why")),
                                "" if solver.get("complete", True) else "; not proven the fewest stops and waves")
    notes = [how, "%s moved, %d more than once" % (_plural(schedule["vms_moved"], "VM"), schedule["vms_moved_twice"])]
    if schedule.get("stay_up"):
        notes.append("staying up: %s" % ", ".join(_text(h) for h in schedule["stay_up"]))
    if schedule.get("keep_free"):
        notes.append("keeping %s of each parent's room free" % _text(schedule["keep_free"]))
    out = [_el("h3", "Rolling maintenance: %s" % _plural(len(schedule["waves"]), "wave"), **{"id": "rolling"}),
           _el("p", esc("; ".join(notes)) + ".", **{"class": "note"}),
           _html_schedule_why(schedule), _html_assumption_note(schedule),
           _el("h4", "Waves, in order", **{"id": "waves-head"}), _html_wave_table(schedule)]
    if schedule["waves"]:
        out.append(_el("h4", "Each wave: placements, devices and what they rest on"))
        out += [_html_wave_section(schedule, w) for w in schedule["waves"]]
    if schedule["assumptions"]:
        rows = [[_el("td", _el("code", esc(a.get("mdev_type")))), _el("td", esc(a.get("source_driver"))),
                 _el("td", esc("%s/%s" % (_text(a.get("target_host")), _text(a.get("target_parent"))))),
                 _el("td", esc(a.get("target_driver"))), _el("td", esc(", ".join(str(x) for x in a.get("waves") or []))),
                 _el("td", esc(", ".join(_text(v) for v in a.get("vms") or []))), _el("td", esc(a.get("assumption")))]
                for a in schedule["assumptions"]]
        out.append(_details("Assumptions, per target parent (%d)" % len(schedule["assumptions"]),
                            _html_table(("type", "source driver", "target", "target driver after", "waves", "VMs",
                                         "assumption"), rows, "assumptions"), **{"id": "rolling-assumptions"}))
    if schedule.get("collisions"):
        rows = [[_el("td", _el("code", esc(c.get("uuid")))), _el("td", esc(c.get("vm"))),
                 _el("td", esc(c.get("source_host"))), _el("td", esc(c.get("target_host"))),
                 _el("td", esc(c.get("held_by") or "a stale %s instance" % _text(c.get("mdev_type"))))]
                for c in schedule["collisions"]]
        out.append(_details("Instance UUIDs already on a target, not used for that VM (%d)" % len(rows),
                            _html_table(("UUID", "VM", "source host", "target host", "held by"), rows,
                                        "collisions"), **{"id": "rolling-collisions"}))
    return _el("section", "\n".join(x for x in out if x), **{"class": "rolling", "id": "rolling-section"})


def _html_unasked(matrix):
    hosts = unasked_hosts(matrix)
    if not hosts:
        return _el("p", "Could not ask: none - every host answered.", **{"class": "note", "id": "unasked"})
    items = [_el("li", _el("b", esc(name)) + " " + _el("span", esc(state), **{"class": "state-bad"})
                 + (" - " + esc(reason) if reason else "")) for name, state, reason in hosts]
    more = ""
    if len(items) > UNASKED_OPEN:  # the rest folded, so the drain plan stays near the top
        more = _details("%d more" % (len(items) - UNASKED_OPEN), _el("ul", "".join(items[UNASKED_OPEN:])),
                        **{"class": "more"})
    return _el("div", _el("h3", "Could not ask (%d)" % len(hosts)) + _el("ul", "".join(items[:UNASKED_OPEN])) + more,
               **{"id": "unasked", "class": "unasked"})


def _drain_names(plan):
    """The drain hosts for the verdict line: the first DRAIN_NAMES, then how many more."""
    hosts = [_text(h) for h in plan.get("drain_hosts") or []]
    text = ", ".join(hosts[:DRAIN_NAMES])
    if len(hosts) > DRAIN_NAMES:
        text += " and %d more hosts" % (len(hosts) - DRAIN_NAMES)
    return esc(text) or "nothing"


def _schedule_badge(ready, small=False):
    cls = "badge %s%s" % ("ready" if ready else "not-ready", " small" if small else "")
    return _el("span", ("ROLLING " if small else "") + ("READY" if ready else "NOT READY"),
               **{"class": cls, "data_schedule_ready": "true" if ready else "false"})


def _plural(n, one, many=None):
    return "%d %s" % (n, one if n == 1 else (many or one + "s"))


def _html_schedule_decision(schedule):
    """The rolling maintenance's verdict in one line: hosts, waves, live migrations, VMs to stop."""
    waves = schedule["waves"]
    hosts = sum(len(w["hosts"]) for w in waves)
    counts = "rolling maintenance: %s in %s (at most %d a wave), %s" % (
        _el("b", esc(_plural(hosts, "host"))), _el("b", esc(_plural(len(waves), "wave"))), schedule["max_wave"],
        _el("b", esc(_plural(schedule["moves"], "live migration"))))
    if schedule["must_stop"]:
        counts += ", %s to shut down or move cold" % _el("b", esc(_plural(len(schedule["must_stop"]), "VM")))
    if schedule["unknown_hosts"]:
        counts += ", %s that cannot be planned" % _el("b", esc(_plural(len(schedule["unknown_hosts"]), "host")))
    return _el("p", _schedule_badge(schedule["ready"]) + " " + _el("span", counts, **{"class": "counts"}),
               **{"id": "rolling-badge", "class": "decision"})


def _html_decision(matrix, plan, schedule=None):
    """The verdict in one line, with the counts an operator decides on (the schedule's first when there is one)."""
    if plan is None and schedule is not None:
        return _html_schedule_decision(schedule)
    if schedule is not None:
        return _html_schedule_decision(schedule) + "\n" + _html_decision(matrix, plan).replace(
            '<span class="counts">draining ', '<span class="counts">drain now, without the schedule: draining ', 1)
    if plan is None:
        text = _el("span", "NO DRAIN PLANNED", **{"class": "badge none", "data_ready": "none"}) + \
            " %d hosts checked; give vfio_migration_drain_hosts for a go/no-go verdict." % len(matrix["hosts"])
    else:
        placed, stranded, cold = (len(plan.get(k) or []) for k in ("placements", "stranded", "cold"))
        drain = _drain_names(plan)
        text = _badge(plan.get("ready")) + " " + _el(
            "span", "draining %s: %s placed, %s stranded, %s cold" % (
                drain, _el("b", str(placed)), _el("b", str(stranded)), _el("b", str(cold))),
            **{"class": "counts"})
    return _el("p", text, **{"id": "plan-badge", "class": "decision"})


def _html_changes(changes, cap=CHANGE_LINES):
    if changes is None:
        return ""
    if not changes.get("previous"):
        return _el("p", "Changes: no previous run to compare with.", **{"class": "note", "id": "changes"})
    since = esc(changes["previous"].get("generated") or "the previous run")
    count = changes.get("count", 0)
    if not count:
        return _el("p", "Changes since %s: none." % since, **{"class": "note", "id": "changes"})
    lines = change_lines(changes)
    shown = "".join(_el("li", esc(line)) for line in lines[:CHANGES_OPEN])
    folded = lines[CHANGES_OPEN:cap]
    more = ""
    if folded:
        more = _details("%d more" % len(folded), _el("ul", "".join(_el("li", esc(line)) for line in folded)),
                        **{"class": "more"})
    left = count - min(cap, len(lines))
    tail = _el("p", "... and %d more in changes.json" % left, **{"class": "note"}) if left > 0 else ""
    return _el("div", _el("h3", "Changed since %s (%d, %d cells)" % (since, count, changes.get("cells_changed", 0)))
               + _el("ul", shown) + more + tail, **{"id": "changes", "class": "changes"})


def _overview_cell(src, target, cell):
    status, evidence = cell["status"], cell["evidence"]
    label = _label(status, evidence)
    if status != SELF and cell["shared"] > 1:
        label = "%s %d/%d" % (label, cell["compatible"], cell["shared"])
    lines = ["%s: %s%s" % (_text(t), s, " (%s)" % ev if ev not in ("none", None) else "")
             for t, (s, ev) in sorted(cell["types"].items())]
    if len(lines) > TITLE_LINES:
        lines = lines[:TITLE_LINES] + ["... %d more" % (len(lines) - TITLE_LINES)]
    title = "%s -> %s: %s; %d of %d shared types compatible\n%s" % (
        _text(src), _text(target), status, cell["compatible"], cell["shared"], "\n".join(lines))
    return _el("td", esc(label), **{
        "class": "ocell st-%s ev-%s" % (_status_token(status), evidence if evidence in EVIDENCES else "none"),
        "data_overview_source": src, "data_overview_target": target, "data_status": status,
        "data_evidence": evidence, "data_shared": cell["shared"], "data_compatible": cell["compatible"],
        "title": title})


def _html_overview(matrix):
    """Host x host (best over shared types, with counts), or per host how many targets in each status."""
    if _too_big(matrix):
        head = "".join(_el("th", h) for h in ("source host", "types")) + "".join(
            _el("th", _swatch(s) + " " + esc(s)) for s in E.STATUSES)
        rows = []
        for r in host_reach(matrix):
            counts = "".join(_el("td", str(r["targets"].get(s, 0)), **{
                "class": "num" + (" st-%s" % s if r["targets"].get(s) else ""), "data_status": s})
                for s in E.STATUSES)
            rows.append("<tr>%s%s%s</tr>" % (_el("th", esc(r["host"]), **{"scope": "row", "class": "src"}),
                                             _el("td", esc(", ".join(r["types"]))), counts))
        return "\n".join([
            _el("h2", "Overview: target hosts per source host and status", **{"id": "overview"}),
            _el("p", "%s: for each source host, how many target hosts end in each status, best over the types "
                     "both share. Fewest compatible targets first." % too_big_note(matrix), **{"class": "note"}),
            _el("table", "<thead><tr>%s</tr></thead><tbody>%s</tbody>" % (head, "\n".join(rows)),
                **{"class": "data reach"})])
    sources, targets, cells = host_overview(matrix)
    head = [_el("th", "source \\ target", **{"class": "corner"})]
    for t in targets:
        h = matrix["hosts"][t]
        head.append(_el("th", esc(t), **{"class": "tgt down" if h.get("state") != "ok" else "tgt", "scope": "col",
                                         "title": "%s: %s" % (_text(t), _text(h.get("state")))}))
    rows = ["<thead><tr>%s</tr></thead>" % "".join(head), "<tbody>"]
    for src in sources:
        rows.append("<tr>%s%s</tr>" % (_el("th", esc(src), **{"class": "src", "scope": "row"}),
                                       "".join(_overview_cell(src, t, cells[(src, t)]) for t in targets)))
    rows.append("</tbody>")
    return "\n".join([
        _el("h2", "Overview: source host (rows) to target host (columns)", **{"id": "overview"}),
        _el("p", "Each cell is the best status over the types both hosts have; k/n: k of the n shared types are "
                 "compatible (shown when they share more than one). Per-type grids are below.",
            **{"class": "note"}),
        _el("table", "\n".join(rows), **{"class": "grid overview"}) if sources else
        _el("p", "No host offers or holds a migratable device.", **{"class": "note"})])


def _html_classes(matrix):
    rows = []
    for c in sorted_classes(matrix):
        rows.append([_el("td", esc(c["id"])), _el("td", _el("code", esc(c["mdev_type"]))),
                     _el("td", esc(c.get("kind"))), _el("td", _html_version(c)),
                     _el("td", esc(", ".join(c["sources"])))])
    unsupported = [r for r in source_rows(matrix) if r["class"] is None]
    out = [_el("h2", "Version classes"),
           _el("p", "Sources with the same type and version form one class; each target is asked once per class.",
               **{"class": "note"}),
           _html_table(("class", "type", "kind", "version", "source hosts"), rows, "classes")]
    if unsupported:
        out += [_el("h3", "Sources that cannot migrate"),
                _html_table(("host", "parent", "type", "status", "instances", "reason"),
                            [[_el("td", esc(r["host"])), _el("td", esc(r["parent"])), _el("td", esc(r["mdev_type"])),
                              _el("td", esc(r["source_status"])), _el("td", esc(" ".join(r["devices"] or []))),
                              _el("td", esc(r["reason"]))] for r in unsupported], "unsupported")]
    return "\n".join(out)


def _type_counts(cells):
    counts = {}
    for c in cells.values():
        if c["status"] != SELF:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
    return counts


def _details(summary_html, body, **attrs):
    return _el("details", _el("summary", summary_html) + "\n" + body, **attrs)


def _html_type_sections(matrix):
    """One collapsible section per type: its grid, or above the grid limit its classes' target counts."""
    out = [_el("h2", "Per type", **{"id": "types"})]
    if _too_big(matrix):
        out.append(_html_class_summary(matrix))
        return "\n".join(out)
    grids = type_grids(matrix)
    if not grids:
        out.append(_el("p", "No host offers or holds a migratable device.", **{"class": "note"}))
    for mdev_type, sources, cells in grids:
        counts = _type_counts(cells)
        chips = " ".join("%s %d" % (esc(STATUS_LABELS[s]), counts[s]) for s in E.STATUSES if counts.get(s))
        head = "Type %s - %d source host%s; %s" % (
            _el("code", esc(mdev_type) or "(none)"), len(sources), "" if len(sources) == 1 else "s",
            chips or "no pairs")
        out.append(_details(head, _html_grid(matrix, mdev_type, sources, cells), **{"data_type_section": mdev_type}))
    return "\n".join(out)


def render_html(matrix, plan=None, generated=None, changes=None, schedule=None):
    """A self-contained page (inline CSS, no script, nothing fetched), decision first.

    The verdict, what changed since the previous run (``changes`` from
    ``_drift.matrix_changes``, optional), hosts that could not be asked, the
    rolling maintenance schedule (``schedule`` from ``_rolling.rolling_schedule``,
    optional) and the drain plan; then the host x host overview; then one
    collapsible grid per type; then the legend, counts, hosts and classes.
    """
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    if schedule is not None:
        ROLLING.check_schedule(schedule)
    if changes is not None and not isinstance(changes, dict):
        raise ValueError("changes must be the output of vfio.migration.matrix_changes or null")
    summ = summary(matrix, plan)
    meta = "%d hosts, %d classes" % (summ["host_count"], summ["class_count"])
    if generated:
        meta = "generated %s - %s" % (esc(generated), meta)
    header = [_el("h1", "VFIO migration compatibility"), _el("span", meta, **{"class": "meta"})]
    if schedule is not None:
        header.append(_schedule_badge(schedule["ready"], small=True))
    if plan is not None:
        header.append(_badge(plan.get("ready"), small=True, prefix="DRAIN NOW " if schedule is not None else ""))
    plan_head = ""
    if schedule is not None and plan is not None:
        plan_head = _el("h3", "Drain plan now: draining %s" % _drain_names(plan), **{"id": "drain-plan"})
    body = [
        _el("header", "".join(header)),
        "<main>",
        _el("section", "\n".join([_el("h2", "Decision", **{"id": "decision"}), _html_decision(matrix, plan, schedule),
                                  _html_changes(changes), _html_unasked(matrix)]
                                 + ([_html_schedule(schedule), plan_head] if schedule is not None else [])
                                 + [_html_plan(plan)]),
            **{"class": "decision-first"}),
        _html_overview(matrix),
        _html_type_sections(matrix),
        _html_legend(),
        _html_summary(summ),
        _html_hosts(matrix),
        _html_classes(matrix),
        "</main>",
    ]
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="generator" content="vfio.migration report schema %d">' % REPORT_SCHEMA_VERSION,
        "<title>VFIO migration compatibility</title>",
        "<style>",
        _css(),
        "</style>",
        "</head>",
        "<body>",
        "\n".join(body),
        "</body>",
        "</html>",
    ]) + "\n"
