# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Classify the errno of a sysfs read or a migration-version write.

The proposals (docs/proposals.md) leave errno values to the vendor driver. This module is the one
place that turns them into verdicts, so the facts module, the probe module
and the controller-side filters agree:

* a *read* that fails means the type cannot migrate (``unsupported``) unless
  the failure says we could not ask at all (``error``);
* a *write* that fails after the types matched means the target refused the
  source (``incompatible``), except errno values that say the target cannot
  migrate at all (``unsupported``) or that we could not ask (``error``).

``error`` is never folded into ``incompatible``: an operator must not drain
a fleet because of a permission problem or a flaky device.
"""

import errno as _errno

COMPATIBLE = "compatible"
INCOMPATIBLE = "incompatible"
UNSUPPORTED = "unsupported"
MISSING_TYPE = "missing_type"
ERROR = "error"
UNKNOWN = "unknown"

STATUSES = (COMPATIBLE, INCOMPATIBLE, UNSUPPORTED, MISSING_TYPE, ERROR, UNKNOWN)


def _codes(*names):
    return frozenset(getattr(_errno, n) for n in names if hasattr(_errno, n))


# The target (or source) cannot migrate this device at all.
UNSUPPORTED_ERRNOS = _codes("ENOENT", "ENODEV", "ENXIO", "EOPNOTSUPP", "ENOTSUP", "ENOSYS")

# We could not ask: permissions, I/O trouble, time-outs, resource pressure.
ERROR_ERRNOS = _codes(
    "EACCES", "EPERM", "EIO", "ETIMEDOUT", "EAGAIN", "EINTR", "EBUSY",
    "ENOMEM", "EROFS", "ELOOP", "ENAMETOOLONG", "ENOTDIR", "EISDIR",
    "ENOTCONN", "ESTALE", "EFAULT", "EBADF",
)


def errno_name(code):
    """Return the symbolic name of an errno value (``ENODEV``), or ``E<n>``."""
    if code is None:
        return None
    return _errno.errorcode.get(code, "E%d" % code)


def read_error_means(code):
    """Classify a failed read of a migration attribute.

    Seed 004: "An errno on read(2) indicates the device of type <type-id>
    does not support migration". Errors that mean we could not read at all
    are kept apart as ``error``.
    """
    if code in ERROR_ERRNOS:
        return ERROR
    return UNSUPPORTED


def write_error_means(code):
    """Classify a failed write of a source version to a target attribute."""
    if code in ERROR_ERRNOS:
        return ERROR
    if code in UNSUPPORTED_ERRNOS:
        return UNSUPPORTED
    return INCOMPATIBLE


def error_record(exc, path=None):
    """Describe an ``OSError`` as plain data (for facts and probe results)."""
    code = getattr(exc, "errno", None)
    return {
        "errno": code,
        "errno_name": errno_name(code),
        "message": (getattr(exc, "strerror", None) or str(exc)),
        "path": path if path is not None else getattr(exc, "filename", None),
    }
