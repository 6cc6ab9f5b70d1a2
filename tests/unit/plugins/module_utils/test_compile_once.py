"""_compile_once: a zip importer that compiles each module once, and nothing else changed.

Each case runs in a fresh interpreter with an audit hook counting what
``compile`` is asked to compile (the hook cannot be removed again, so not in
the test process itself).
"""

import json
import os
import subprocess
import sys
import textwrap

from ansible_collections.vfio.migration.plugins.module_utils import _compile_once

# the directory holding ansible_collections/, wherever the tests run (a checkout, ansible-test's copy)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(_compile_once.__file__), *[os.pardir] * 5))

SCRIPT = textwrap.dedent(r"""
    import collections, importlib.util, json, py_compile, sys, zipfile, zipimport
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.vfio.migration.plugins.module_utils import _compile_once as C
    compiled = collections.Counter()
    sys.addaudithook(lambda event, args: event == "compile" and isinstance(args[1], str)
                     and compiled.update([args[1].rsplit("/", 1)[-1]]))
    archive = sys.argv[2] + "/m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("plain.py", "VALUE = 6 * 7\n")
        z.writestr("pkg/__init__.py", "NAME = 'pkg'\n")
        py_compile.compile(sys.argv[3], cfile=sys.argv[2] + "/elsewhere.pyc", doraise=True)
        z.write(sys.argv[2] + "/elsewhere.pyc", "elsewhere.pyc")
    out = {}
    for mode in ("once", "plain"):
        loader = zipimport.zipimporter(archive)
        out[mode] = {"patched": C.compile_once(loader), "again": C.compile_once(loader), "modules": {}}
        for name in ("plain", "pkg", "elsewhere"):
            if mode == "plain":
                loader = zipimport.zipimporter(archive)
            compiled.clear()
            spec = importlib.util.spec_from_loader(name, loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            out[mode]["modules"][name] = {"compiles": sum(compiled.values()), "file": module.__file__,
                                          "value": getattr(module, "VALUE", getattr(module, "NAME", None))}
    # a loader that is not a zip importer (this module's own, from the checkout) is left alone
    out["file_loader"] = C.compile_once(C.__spec__.loader)
    print(json.dumps(out))
""")


def test_a_zip_importer_compiles_each_module_once_and_names_the_same_files(tmp_path):
    source = tmp_path / "elsewhere.py"
    source.write_text("VALUE = 'from byte code'\n")
    script = tmp_path / "case.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), COLLECTIONS, str(tmp_path), str(source)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    archive = str(tmp_path / "m.zip")
    once, plain = out["once"], out["plain"]
    assert once["patched"] is True and once["again"] is False and out["file_loader"] is False
    # without it, zipimport compiles a source twice: once for the file name, once to run it
    assert plain["modules"]["plain"]["compiles"] == 2 and once["modules"]["plain"]["compiles"] == 1
    assert plain["modules"]["pkg"]["compiles"] == 2 and once["modules"]["pkg"]["compiles"] == 1
    # byte code compiled elsewhere is not compiled at all; its file is still named as zipimport names it
    assert once["modules"]["elsewhere"]["compiles"] == plain["modules"]["elsewhere"]["compiles"] == 0
    for name, value, path in (("plain", 42, "/plain.py"), ("pkg", "pkg", "/pkg/__init__.py"),
                              ("elsewhere", "from byte code", "/elsewhere.pyc")):
        assert once["modules"][name]["file"] == plain["modules"][name]["file"] == archive + path, name
        assert once["modules"][name]["value"] == plain["modules"][name]["value"] == value, name
