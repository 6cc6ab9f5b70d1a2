"""Vendor-driver behaviour of emulated sysfs migration attributes.

Each rule is a small class named in ``rules.json`` (``{"rule": "exact", ...}``).
A rule answers a read with bytes and a write (one whole attribute store, as
sysfs does) with the number of bytes accepted; a refusal is an ``OSError``
carrying the errno the vendor driver would return, which the FUSE layer hands
to the writer unchanged.

Rules that wait (``slow``, ``hang``) do so through a :class:`Waiter`, which
gives up when the writer is interrupted (killed) or the emulator stops.
"""

import errno
import os
import re
import threading
import time

#: rule name -> rule class; filled by :func:`register`.
RULES = {}


def register(name):
    """Class decorator: make a rule class available under ``name``."""
    def add(cls):
        cls.name = name
        RULES[name] = cls
        return cls
    return add


def fail(code, detail=None):
    """An ``OSError`` for ``code``, as a vendor driver's store/show would return."""
    message = os.strerror(code)
    if detail:
        message = "%s (%s)" % (message, detail)
    return OSError(code, message)


class RuleError(ValueError):
    """A rules.json entry that cannot be used."""


class Waiter(object):
    """Sleeps for a rule in short slices.

    ``stop`` is a ``threading.Event`` set when the emulator shuts down;
    ``interrupted`` is a callable telling whether the current FUSE request was
    interrupted (the writer got a signal, e.g. was killed).
    """

    SLICE = 0.05

    def __init__(self, stop=None, interrupted=None):
        self.stop = stop if stop is not None else threading.Event()
        self.interrupted = interrupted or (lambda: False)

    def sleep(self, seconds):
        """Sleep ``seconds``; raise EINTR/EIO if interrupted or stopped first."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(self.SLICE, left))

    def block(self):
        """Wait until interrupted (EINTR) or stopped (EIO); never returns."""
        while True:
            self.check()
            self.stop.wait(self.SLICE)

    def check(self):
        if self.interrupted():
            raise fail(errno.EINTR, "writer interrupted")
        if self.stop.is_set():
            raise fail(errno.EIO, "emulator stopped")


class Rule(object):
    """Base class: an attribute whose read and write answers are scripted."""

    name = None
    #: keys a rules.json entry must carry besides "rule"
    required = ()

    def __init__(self, spec, waiter):
        missing = [key for key in self.required if key not in spec]
        if missing:
            raise RuleError("rule %r needs %s" % (self.name, ", ".join(missing)))
        self.spec = spec
        self.waiter = waiter

    def read(self):
        """Bytes a read returns, or raise ``OSError``."""
        raise NotImplementedError

    def write(self, data):
        """Accept ``data`` (return ``len(data)``) or raise ``OSError``."""
        raise NotImplementedError

    def __repr__(self):
        return "<%s %r>" % (type(self).__name__, self.spec)


class ShowsSelf(Rule):
    """A rule whose read shows ``self`` plus the newline the kernel prints."""

    required = ("self",)

    @property
    def shown(self):
        return (str(self.spec["self"]) + "\n").encode("ascii")

    def read(self):
        return self.shown


@register("exact")
class ExactRule(ShowsSelf):
    """Intel GVT-g (2019 `version` proposal): compatible only with the identical string.

    The kernel's own string carries the trailing newline and userspace writes
    with ``echo``, so the written bytes must equal ``self + "\\n"`` exactly.
    ``"unsupported": true`` models a GPU generation without migration support:
    read and write both fail with ENODEV.
    """

    def read(self):
        if self.spec.get("unsupported"):
            raise fail(errno.ENODEV, "hardware generation cannot migrate")
        return self.shown

    def write(self, data):
        if self.spec.get("unsupported"):
            raise fail(errno.ENODEV, "hardware generation cannot migrate")
        if data != self.shown:
            raise fail(errno.EINVAL, "version differs")
        return len(data)


@register("range")
class RangeRule(ShowsSelf):
    """Versions ``<prefix>-<major>.<minor>``: accepts sources not newer.

    A written version is compatible when prefix and major are equal and its
    minor is not newer than ours, so compatibility is asymmetric. A different
    prefix or a newer minor is EINVAL, a different major EPROTO (a second
    vendor errno), anything unparsable EINVAL.
    """

    PATTERN = re.compile(r"^(?P<prefix>.+)-(?P<major>\d+)\.(?P<minor>\d+)$")

    def __init__(self, spec, waiter):
        super(RangeRule, self).__init__(spec, waiter)
        own = self.parse(str(spec["self"]))
        if own is None:
            raise RuleError("range rule: self %r is not <prefix>-<major>.<minor>" % spec["self"])
        self.prefix, self.major, self.minor = own

    @classmethod
    def parse(cls, text):
        match = cls.PATTERN.match(text)
        if not match:
            return None
        return match.group("prefix"), int(match.group("major")), int(match.group("minor"))

    def write(self, data):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise fail(errno.EINVAL, "not ASCII")
        if text.endswith("\n"):
            text = text[:-1]
        theirs = self.parse(text)
        if theirs is None:
            raise fail(errno.EINVAL, "unparsable version")
        prefix, major, minor = theirs
        if prefix != self.prefix:
            raise fail(errno.EINVAL, "different device or type")
        if major != self.major:
            raise fail(errno.EPROTO, "different major version")
        if minor > self.minor:
            raise fail(errno.EINVAL, "source minor %d newer than %d" % (minor, self.minor))
        return len(data)


@register("read_enodev")
class ReadEnodevRule(Rule):
    """The type cannot migrate: read and write both fail with ENODEV."""

    def read(self):
        raise fail(errno.ENODEV)

    def write(self, data):
        raise fail(errno.ENODEV)


@register("slow")
class SlowRule(Rule):
    """Waits ``delay`` seconds, then answers as the ``inner`` rule."""

    required = ("delay", "inner")

    def __init__(self, spec, waiter):
        super(SlowRule, self).__init__(spec, waiter)
        self.delay = float(spec["delay"])
        self.inner = build_rule(spec["inner"], waiter)

    def read(self):
        self.waiter.sleep(self.delay)
        return self.inner.read()

    def write(self, data):
        self.waiter.sleep(self.delay)
        return self.inner.write(data)


class RefusingRule(ShowsSelf):
    """Reads ``self``; every write fails with :attr:`errno`."""

    errno = None

    def write(self, data):
        raise fail(self.errno)


@register("eio")
class EioRule(RefusingRule):
    """A driver that fails the store with an I/O error."""

    errno = errno.EIO


@register("eacces")
class EaccesRule(RefusingRule):
    """A driver (or LSM) that denies the store."""

    errno = errno.EACCES


@register("hang")
class HangRule(ShowsSelf):
    """Reads ``self``; a write blocks until the writer is killed or the emulator stops.

    With ``"show": true`` a read blocks too: a driver whose store hangs holding
    the lock its show needs.
    """

    def read(self):
        if self.spec.get("show"):
            self.waiter.block()
        return self.shown

    def write(self, data):
        self.waiter.block()


@register("read_error")
class ReadErrorRule(Rule):
    """Any attribute whose read and write fail with ``errno`` (a name: ``EACCES``, ``ENODEV``, ``EIO``).

    ``EACCES`` stands for a file the reader may not open (mode 000 for a
    non-root reader, an LSM denial); ``ENODEV`` for a device unplugged while
    its attributes are read (kernfs answers ENODEV once the node is gone).
    Unlike the migration rules it may sit on any file (``name``, ``description``).
    """

    required = ("errno",)

    def __init__(self, spec, waiter):
        super(ReadErrorRule, self).__init__(spec, waiter)
        code = getattr(errno, str(spec["errno"]), None)
        if not isinstance(code, int) or not str(spec["errno"]).startswith("E"):
            raise RuleError("read_error rule: %r is not an errno name" % (spec["errno"],))
        self.code = code

    def read(self):
        raise fail(self.code)

    def write(self, data):
        raise fail(self.code)


def build_rule(spec, waiter=None):
    """The rule object for one rules.json entry."""
    if not isinstance(spec, dict) or "rule" not in spec:
        raise RuleError("not a rule entry: %r" % (spec,))
    cls = RULES.get(spec["rule"])
    if cls is None:
        raise RuleError("unknown rule %r (known: %s)" % (spec["rule"], ", ".join(sorted(RULES))))
    return cls(spec, waiter or Waiter())
