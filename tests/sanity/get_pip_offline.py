"""Stand-in for the pip bootstrap script ansible-test downloads.

ansible-test looks for a cached bootstrap at
``~/.ansible/test/cache/get_pip_<version>.py`` before downloading one. This
machine cannot reach the download host, so the sanity test runner puts this
file there. It installs pip from the interpreter's own ``ensurepip`` and then
runs ``pip install`` with the arguments ansible-test passed (less the two
bootstrap-only flags), which reaches the package index as usual.
"""

import subprocess
import sys

BOOTSTRAP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    args = [a for a in sys.argv[1:] if a not in BOOTSTRAP_ONLY]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
