"""errno classification: the table the verdicts rest on (module_utils._errno)."""

import errno

import pytest

from ansible_collections.vfio.migration.plugins.module_utils import _errno as E


@pytest.mark.parametrize("code,want", [
    (errno.EINVAL, E.INCOMPATIBLE),     # GVT-g: versions differ
    (errno.EPROTO, E.INCOMPATIBLE),     # any other vendor errno after a type match
    (errno.ERANGE, E.INCOMPATIBLE),
    (errno.ENODEV, E.UNSUPPORTED),      # GVT-g: unsupported generation
    (errno.ENOENT, E.UNSUPPORTED),      # attribute missing
    (errno.EOPNOTSUPP, E.UNSUPPORTED),
    (errno.EACCES, E.ERROR),            # never incompatible: we could not ask
    (errno.EPERM, E.ERROR),
    (errno.EIO, E.ERROR),
    (errno.ETIMEDOUT, E.ERROR),
    (errno.EBUSY, E.ERROR),
])
def test_write_errno(code, want):
    assert E.write_error_means(code) == want


@pytest.mark.parametrize("code,want", [
    (errno.ENODEV, E.UNSUPPORTED),
    (errno.EINVAL, E.UNSUPPORTED),      # 2019 `version` proposal: GVT without migration answers EINVAL on read
    (errno.EOPNOTSUPP, E.UNSUPPORTED),
    (errno.ENOENT, E.UNSUPPORTED),
    (errno.EACCES, E.ERROR),
    (errno.EIO, E.ERROR),
    (errno.ETIMEDOUT, E.ERROR),
])
def test_read_errno(code, want):
    assert E.read_error_means(code) == want


def test_permission_and_io_errors_are_never_verdicts():
    for code in (errno.EACCES, errno.EPERM, errno.EIO, errno.ETIMEDOUT):
        assert E.write_error_means(code) not in (E.COMPATIBLE, E.INCOMPATIBLE)
        assert E.read_error_means(code) != E.UNSUPPORTED


def test_errno_name():
    assert E.errno_name(errno.ENODEV) == "ENODEV"
    assert E.errno_name(None) is None
    assert E.errno_name(4242) == "E4242"


def test_error_record_from_oserror():
    rec = E.error_record(OSError(errno.EIO, "Input/output error", "/sys/x"))
    assert rec == {"errno": errno.EIO, "errno_name": "EIO", "message": "Input/output error", "path": "/sys/x"}
