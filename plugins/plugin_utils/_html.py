# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML report: one self-contained page (inline CSS, no script, nothing fetched).

Built from the views in ``_views.py``; every string is escaped (text and
attributes). The page puts the decision first: the verdict, what changed
since the previous run, hosts that could not be asked and the drain plan;
then a host x host overview, then one collapsible grid per type.
"""

import html

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E
from ansible_collections.vfio.migration.plugins.plugin_utils._views import (
    EVIDENCES, GRID_LIMIT, POLICY_SUFFIX, REPORT_SCHEMA_VERSION, SELF, STATUS_COLOURS, STATUS_LABELS,
    STATUS_MEANINGS, TITLE_LINES, _TEXT_COLOURS, _basis_text, _label, _plan_or_none, _status_token, _text,
    _too_big, check_inputs, class_basis, class_summary, host_overview, host_reach, sorted_classes, source_rows,
    summary, type_grids, unasked_hosts)
from ansible_collections.vfio.migration.plugins.plugin_utils._summary import change_lines

# At most this many change lines on the page (the first CHANGES_OPEN shown, the rest folded);
# changes.json has them all.
CHANGE_LINES = 200
CHANGES_OPEN = 8


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
        _el("p", "%d hosts are more than a %d x %d grid can show; instead, how many target hosts end in each "
                 "status for each version class (best over the target's parents)."
            % (len(matrix["hosts"]), GRID_LIMIT, GRID_LIMIT), **{"class": "note"}),
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


def _badge(ready, small=False):
    cls = "badge %s%s" % ("ready" if ready else "not-ready", " small" if small else "")
    return _el("span", "READY" if ready else "NOT READY", **{"class": cls, "data_ready": "true" if ready else "false"})


def _stranded_why(s):
    """Every reason of a stranded item: its reasons (or reason) and one line per target."""
    reasons = [r for r in s.get("reasons") or [] if r] or [s.get("reason")]
    head = "<br>".join(esc(r) for r in reasons)
    details = "".join(_el("li", esc(d)) for d in s.get("details") or [])
    return head + (_el("ul", details) if details else "")


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


def _html_unasked(matrix):
    hosts = unasked_hosts(matrix)
    if not hosts:
        return _el("p", "Could not ask: none - every host answered.", **{"class": "note", "id": "unasked"})
    items = "".join(
        _el("li", _el("b", esc(name)) + " " + _el("span", esc(state), **{"class": "state-bad"})
            + (" - " + esc(reason) if reason else "")) for name, state, reason in hosts)
    return _el("div", _el("h3", "Could not ask (%d)" % len(hosts)) + _el("ul", items),
               **{"id": "unasked", "class": "unasked"})


def _html_decision(matrix, plan):
    """The verdict in one line, with the counts an operator decides on."""
    if plan is None:
        text = _el("span", "NO DRAIN PLANNED", **{"class": "badge none", "data_ready": "none"}) + \
            " %d hosts checked; give vfio_migration_drain_hosts for a go/no-go verdict." % len(matrix["hosts"])
    else:
        placed, stranded, cold = (len(plan.get(k) or []) for k in ("placements", "stranded", "cold"))
        drain = esc(", ".join(_text(h) for h in plan.get("drain_hosts") or [])) or "nothing"
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
            _el("p", "%d hosts are more than a host x host grid can show (limit %d): for each source host, how many "
                     "target hosts end in each status, best over the types both share. Fewest compatible targets "
                     "first." % (len(matrix["hosts"]), GRID_LIMIT), **{"class": "note"}),
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


def render_html(matrix, plan=None, generated=None, changes=None):
    """A self-contained page (inline CSS, no script, nothing fetched), decision first.

    The verdict, what changed since the previous run (``changes`` from
    ``_drift.matrix_changes``, optional), hosts that could not be asked and
    the drain plan; then the host x host overview; then one collapsible grid
    per type; then the legend, counts, hosts and classes.
    """
    plan = _plan_or_none(plan)
    check_inputs(matrix, plan, generated)
    if changes is not None and not isinstance(changes, dict):
        raise ValueError("changes must be the output of vfio.migration.matrix_changes or null")
    summ = summary(matrix, plan)
    meta = "%d hosts, %d classes" % (summ["host_count"], summ["class_count"])
    if generated:
        meta = "generated %s - %s" % (esc(generated), meta)
    header = [_el("h1", "VFIO migration compatibility"), _el("span", meta, **{"class": "meta"})]
    if plan is not None:
        header.append(_badge(plan.get("ready"), small=True))
    body = [
        _el("header", "".join(header)),
        "<main>",
        _el("section", "\n".join([_el("h2", "Decision", **{"id": "decision"}), _html_decision(matrix, plan),
                                  _html_changes(changes), _html_unasked(matrix), _html_plan(plan)]),
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
