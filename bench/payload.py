"""Module payload: how many bytes AnsiballZ ships to a host for each module.

Runs ``mdev_facts`` and ``migration_probe`` once each through ``ansible
localhost -c local`` with ``ANSIBLE_KEEP_REMOTE_FILES=1`` and a private
``remote_tmp``, then measures the ``AnsiballZ_<module>.py`` file Ansible left
there (what really travels to a managed host) and opens the zip inside it to
list the collection's own files and their uncompressed sizes.

    .venv/bin/python bench/payload.py                       # this working tree
    .venv/bin/python bench/payload.py --tree /tmp/old-tree  # another checkout, e.g. `git archive` of a commit
    .venv/bin/python bench/payload.py --json                # machine-readable

Neither run writes anything: ``mdev_facts`` reads an empty tree and the probe's
only check names a type that tree does not offer (``missing_type``).
"""

import argparse
import base64
import glob
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {
    "mdev_facts": {"sysfs_root": "{sys}"},
    "migration_probe": {"sysfs_root": "{sys}", "allow_non_sysfs": True,
                        "checks": [{"id": "payload", "mdev_type": "nvidia-257", "version": "000210de-nvidia-257-2.3"}]},
}
COLLECTION_PREFIX = "ansible_collections/vfio/migration/"


def collection_path(tree, work):
    """A directory holding ``ansible_collections/vfio/migration`` -> ``tree``."""
    base = os.path.join(work, "collections")
    link = os.path.join(base, "ansible_collections", "vfio", "migration")
    os.makedirs(os.path.dirname(link))
    os.symlink(os.path.abspath(tree), link)
    return base


def payload_of(module, tree, work):
    """Run ``module`` once and measure the AnsiballZ file it left behind."""
    remote_tmp = os.path.join(work, "remote-" + module)
    sysfs = os.path.join(work, "sys")
    os.makedirs(sysfs, exist_ok=True)
    args = json.loads(json.dumps(MODULES[module]).replace("{sys}", sysfs))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_path(tree, os.path.join(work, "c-" + module)),
               ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=remote_tmp, ANSIBLE_PIPELINING="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_NOCOLOR="1")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
           "-e", "ansible_python_interpreter=%s" % sys.executable,
           "-m", "vfio.migration." + module, "-a", json.dumps(args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    found = glob.glob(os.path.join(remote_tmp, "*", "AnsiballZ_%s.py" % module))
    if proc.returncode != 0 or len(found) != 1:
        raise SystemExit("%s: rc=%s, %d payloads\n%s%s" % (module, proc.returncode, len(found), proc.stdout, proc.stderr))
    with open(found[0]) as f:
        wrapper = f.read()
    zip_b64 = re.search(r"^zip_data\s*=\s*'([A-Za-z0-9+/=]+)'", wrapper, re.M)
    if not zip_b64:
        raise SystemExit("%s: no zip_data in %s" % (module, found[0]))
    raw = base64.b64decode(zip_b64.group(1))
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        members = archive.infolist()
    ours = [m for m in members if m.filename.startswith(COLLECTION_PREFIX)]
    own = {m.filename[len(COLLECTION_PREFIX):]: m.file_size for m in ours}
    return {
        "ansiballz_bytes": len(wrapper.encode("utf-8")),
        "zip_bytes": len(raw),
        "files": len(members),
        "uncompressed_bytes": sum(m.file_size for m in members),
        "collection_files": own,
        "collection_uncompressed_bytes": sum(own.values()),
        "collection_compressed_bytes": sum(m.compress_size for m in ours),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tree", default=REPO, help="the collection tree to measure (default: this checkout)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vfio-payload-") as work:
        sizes = {m: payload_of(m, opts.tree, work) for m in MODULES}
    if opts.json:
        print(json.dumps(sizes, indent=1, sort_keys=True))
        return
    print("| module | AnsiballZ file | zip inside it | the collection's files in the zip (uncompressed / compressed) |")
    print("|---|---|---|---|")
    for module, s in sizes.items():
        files = ", ".join("`%s` %s" % (os.path.basename(f), format(n, ","))
                          for f, n in sorted(s["collection_files"].items()) if n)
        print("| `%s` | %s B | %s B | %s B / %s B: %s |" % (
            module, format(s["ansiballz_bytes"], ","), format(s["zip_bytes"], ","),
            format(s["collection_uncompressed_bytes"], ","), format(s["collection_compressed_bytes"], ","), files))


if __name__ == "__main__":
    main()
