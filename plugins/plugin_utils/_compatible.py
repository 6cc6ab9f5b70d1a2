# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Matching ``migration/self`` against templated ``migration/compatible`` (2020 `migration/self` proposal, docs/proposals.md).

The controller decides without any write when both drivers publish the
proposed layout: ``parse_compatible`` reads a ``compatible`` file and its
``{...}`` templates, ``compatible_match`` says whether a source's ``self``
matches any block, with the bindings or a reason per block. Used by the
matrix (``_matrix.py``) and the ``compatible_match`` and
``parse_migration_layout`` filters (``plugins/filter/version.py``).
"""

import re

from ansible_collections.vfio.migration.plugins.module_utils._version import (
    LAYOUT_KEY_RE, VERSION_MAX, parse_kv_blocks,
)
from ansible_collections.vfio.migration.plugins.plugin_utils._text import shorten

# ---------------------------------------------------------------------------
# Templates in ``migration/compatible`` (2020 `migration/self` proposal, docs/proposals.md)
# ---------------------------------------------------------------------------
#
# A ``compatible`` file holds blocks of ``key=value`` lines. A value is
# literal text in which ``{...}`` placeholders may appear:
#
#   {name:int}            declares an int variable: any non-negative integer
#   {name:int:1,2,4,8}    ... limited to a list; items may be ranges: {n:int:1-8,16}
#   {name:str}            declares a str variable: any non-empty text
#   {name:str:a,b,c}      ... one of a list
#   {name:version}        declares a major.minor.bugfix version
#   {name:version:>=1.0.0,<2.0.0}   ... meeting every comparison (>= > <= < == !=;
#                         a bare 1.2.3 means ==)
#   {name}  {name*2+1}    a reference: the value of an expression over declared
#                         variables (int variables only when arithmetic is used)
#   {{  }}                a literal brace
#
# Integers are canonical decimal (no sign, no leading zero). A value with a
# declaration is a *pattern*: the self value must have that shape, and the
# variables take the values found there. A value without declarations but
# with references is *derived*: when the whole value, with each {...} taken as
# an operand, is an integer expression (``aggregator={val1}/2``), it is
# evaluated (+ - * /, parentheses; ``/`` must divide exactly or the block
# does not match) and compared with the self value as an integer; otherwise
# the references are substituted into the text (``V5_{val1}``). One binding
# of every variable holds for the whole block. A value without placeholders
# is compared as an exact string, except ``software_version`` where two
# ``major.minor.bugfix`` strings compare by their numbers (``1.01.0`` is
# ``1.1.0``).

MAX_PLACEHOLDERS_PER_VALUE = 32
MAX_VARIABLES_PER_BLOCK = 64
MAX_EXPRESSION_DEPTH = 32
MAX_EXPRESSION_TOKENS = 128
MAX_INT_DIGITS = 64
MAX_MATCH_STEPS = 200000

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_INT_RE = re.compile(r"^(0|[1-9][0-9]*)\Z")
_VERSION_RE = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)\Z")
_VERSION_OPS = (">=", "<=", "==", "!=", ">", "<")
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | _DIGITS
_ARITH_CHARS = _DIGITS | frozenset("+-*/() \t")
_SIGNED_INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)\Z")
SOFTWARE_VERSION_KEY = "software_version"
# a number this wide has more decimal digits than a 4096-byte value can hold
_MAX_TEXT_BITS = 4 * VERSION_MAX


class TemplateError(ValueError):
    """A malformed ``migration/compatible`` (or ``self``) layout or template."""


def _version_tuple(text):
    """``(major, minor, bugfix)`` for a ``major.minor.bugfix`` string, else None."""
    m = _VERSION_RE.match(text)
    if not m or any(len(part) > MAX_INT_DIGITS for part in m.groups()):
        return None
    return tuple(int(part) for part in m.groups())


def _compare(op, left, right):
    return {
        ">=": left >= right, "<=": left <= right, "==": left == right,
        "!=": left != right, ">": left > right, "<": left < right,
    }[op]


# -- variable kinds ---------------------------------------------------------

class _Variable(object):
    """A declared template variable: its kind and the values it may take."""

    kind = None

    def __init__(self, name, spec):
        self.name = name
        self.spec = spec  # the text after the second ':', or None

    def candidates(self, text, pos):
        """Yield ``(end, value)`` for each way this variable can match ``text[pos:end]``."""
        raise NotImplementedError

    def text_of(self, value):
        """The text a bound value stands for in a value."""
        return str(value)

    def min_length(self):
        """The fewest characters a value of this variable takes."""
        return 1

    def signature(self):
        """What two declarations must share to be the same variable."""
        raise NotImplementedError

    def describe(self):
        """A JSON-friendly description for reports."""
        return {"name": self.name, "kind": self.kind, "spec": self.spec}


class _IntVariable(_Variable):
    """``{name:int}``, ``{name:int:1,2,4,8}``, ``{name:int:1-8,16}``."""

    kind = "int"

    def __init__(self, name, spec):
        super(_IntVariable, self).__init__(name, spec)
        self.values, self.ranges = set(), []
        if spec is None:
            return
        for item in _spec_items(name, spec):
            lo, dash, hi = item.partition("-")
            lo, hi = lo.strip(), hi.strip()
            if not _is_small_int(lo) or (dash and not _is_small_int(hi)):
                raise TemplateError("variable %s: %r is not a non-negative integer or a range like 1-8"
                                    % (name, shorten(item, 30)))
            if not dash:
                self.values.add(int(lo))
            elif int(lo) > int(hi):
                raise TemplateError("variable %s: range %s is empty (%s > %s)" % (name, item, lo, hi))
            else:
                self.ranges.append((int(lo), int(hi)))
        self.ranges.sort()

    def allows(self, number):
        if self.spec is None:
            return True
        return number in self.values or any(lo <= number <= hi for lo, hi in self.ranges)

    def candidates(self, text, pos):
        end = pos
        while end < len(text) and text[end] in _DIGITS:
            end += 1
        if end == pos:
            return
        if text[pos] == "0":
            end = pos + 1  # canonical decimal: a leading 0 is the whole number
        for stop in range(min(end, pos + MAX_INT_DIGITS), pos, -1):
            number = int(text[pos:stop])
            if self.allows(number):
                yield stop, number

    def signature(self):
        return (self.kind, self.spec is None, frozenset(self.values), tuple(self.ranges))

    def describe(self):
        out = super(_IntVariable, self).describe()
        out["values"] = sorted(self.values)
        out["ranges"] = [list(r) for r in self.ranges]
        return out


class _StrVariable(_Variable):
    """``{name:str}`` (any non-empty text) or ``{name:str:a,b,c}``."""

    kind = "str"

    def __init__(self, name, spec):
        super(_StrVariable, self).__init__(name, spec)
        self.values = None if spec is None else _spec_items(name, spec)

    def candidates(self, text, pos):
        if self.values is None:
            for end in range(len(text), pos, -1):
                yield end, text[pos:end]
            return
        for value in sorted(set(self.values), key=len, reverse=True):
            if text.startswith(value, pos):
                yield pos + len(value), value

    def min_length(self):
        return 1 if self.values is None else min(len(v) for v in self.values)

    def signature(self):
        return (self.kind, None if self.values is None else frozenset(self.values))

    def describe(self):
        out = super(_StrVariable, self).describe()
        out["values"] = None if self.values is None else list(self.values)
        return out


class _VersionVariable(_Variable):
    """``{name:version}`` or ``{name:version:>=1.0.0,<2.0.0}``: every comparison must hold."""

    kind = "version"
    _SCAN_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")

    def __init__(self, name, spec):
        super(_VersionVariable, self).__init__(name, spec)
        self.constraints = []
        if spec is None:
            return
        for item in _spec_items(name, spec):
            op = next((o for o in _VERSION_OPS if item.startswith(o)), "==")
            bound = item[len(op):].strip() if item.startswith(op) else item
            if _version_tuple(bound) is None:
                raise TemplateError("variable %s: %r is not a comparison like >=1.2.0"
                                    % (name, shorten(item, 30)))
            self.constraints.append((op, bound))

    def allows(self, version):
        return all(_compare(op, version, _version_tuple(bound)) for op, bound in self.constraints)

    def candidates(self, text, pos):
        m = self._SCAN_RE.match(text, pos)
        if not m:
            return
        # the bugfix number may end early (1.2.34 then "4" as literal text): longest first
        bugfix_start = text.rfind(".", pos, m.end()) + 1
        for end in range(m.end(), bugfix_start, -1):
            version = _version_tuple(text[pos:end])
            if version is not None and self.allows(version):
                yield end, text[pos:end]

    def min_length(self):
        return len("0.0.0")

    def signature(self):
        return (self.kind, tuple(sorted(self.constraints)))

    def describe(self):
        out = super(_VersionVariable, self).describe()
        out["constraints"] = [list(c) for c in self.constraints]
        return out


_KINDS = {cls.kind: cls for cls in (_IntVariable, _StrVariable, _VersionVariable)}


def _is_small_int(text):
    return bool(_INT_RE.match(text)) and len(text) <= MAX_INT_DIGITS


def _spec_items(name, spec):
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise TemplateError("variable %s: empty item in the value list %r" % (name, shorten(spec, 40)))
    return items


# -- integer expressions ----------------------------------------------------

class _TooDeep(TemplateError):
    """An expression too deep or too long to evaluate safely (not just a syntax error)."""


class _NoValue(Exception):
    """An expression has no integer value (inexact division, division by zero)."""


def _tokenize(text):
    """Tokens of an arithmetic text: ints, names, operators and parentheses."""
    tokens, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
        elif ch in "+-*/()":
            tokens.append(("op", ch))
            i += 1
        elif ch in _DIGITS:
            j = i
            while j < len(text) and text[j] in _DIGITS:
                j += 1
            if j - i > MAX_INT_DIGITS:
                raise TemplateError("integer %s... is too long" % text[i:i + 20])
            tokens.append(("int", int(text[i:j])))
            i = j
        elif ch in _NAME_START:
            j = i
            while j < len(text) and text[j] in _NAME_CHARS:
                j += 1
            tokens.append(("name", text[i:j]))
            i = j
        else:
            raise TemplateError("unexpected character %r" % ch)
    return tokens


class _ExprParser(object):
    """Recursive descent over tokens; ``sub`` tokens are already parsed operands.

    AST nodes: ``("int", n)``, ``("var", name)``, ``("neg", node)``,
    ``("bin", op, left, right)``.
    """

    def __init__(self, tokens):
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def parse(self):
        if not self.tokens:
            raise TemplateError("empty expression")
        if len(self.tokens) > MAX_EXPRESSION_TOKENS:
            # also bounds the depth of the tree that _evaluate walks
            raise _TooDeep("expression longer than %d tokens" % MAX_EXPRESSION_TOKENS)
        node = self.expr()
        if self.pos != len(self.tokens):
            raise TemplateError("unexpected %s" % self._show_token(self.tokens[self.pos]))
        return node

    @staticmethod
    def _show_token(token):
        return "operand" if token[0] == "sub" else repr(str(token[1]))

    def _peek_op(self, ops):
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "op" and self.tokens[self.pos][1] in ops:
            self.pos += 1
            return self.tokens[self.pos - 1][1]
        return None

    def expr(self):
        node = self.term()
        op = self._peek_op("+-")
        while op:
            node = ("bin", op, node, self.term())
            op = self._peek_op("+-")
        return node

    def term(self):
        node = self.factor()
        op = self._peek_op("*/")
        while op:
            node = ("bin", op, node, self.factor())
            op = self._peek_op("*/")
        return node

    def factor(self):
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise _TooDeep("expression nested more than %d deep" % MAX_EXPRESSION_DEPTH)
        try:
            if self.pos >= len(self.tokens):
                raise TemplateError("expression ends where an operand is expected")
            kind, value = self.tokens[self.pos]
            self.pos += 1
            if kind == "int":
                return ("int", value)
            if kind == "name":
                return ("var", value)
            if kind == "sub":
                return value
            if value in "+-":
                operand = self.factor()
                return ("neg", operand) if value == "-" else operand
            if value == "(":
                node = self.expr()
                if not self._peek_op(")"):
                    raise TemplateError("missing ')'")
                return node
            raise TemplateError("unexpected %r" % value)
        finally:
            self.depth -= 1


def _expr_names(node):
    """Variable names used in an expression, in order of first use."""
    if node[0] == "var":
        return [node[1]]
    names = []
    for child in node[1:]:
        if isinstance(child, tuple):
            names.extend(n for n in _expr_names(child) if n not in names)
    return names


def _evaluate(node, bindings):
    """Integer value of an expression; raises ``_NoValue`` for inexact or zero division."""
    kind = node[0]
    if kind == "int":
        return node[1]
    if kind == "var":
        return bindings[node[1]]
    if kind == "neg":
        return -_evaluate(node[1], bindings)
    op, left, right = node[1], _evaluate(node[2], bindings), _evaluate(node[3], bindings)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        raise _NoValue("division by zero")
    if left % right:
        raise _NoValue("%s / %s is not a whole number" % (_show_int(left), _show_int(right)))
    return left // right


def _show_int(number):
    return str(number) if number.bit_length() < 1000 else "<a %d-bit number>" % number.bit_length()


# -- values: literal text, declarations, references --------------------------

class _Lit(object):
    def __init__(self, text):
        self.text = text


class _Decl(object):
    def __init__(self, variable):
        self.variable = variable


class _Ref(object):
    def __init__(self, node, bare):
        self.node = node
        self.bare = bare  # a lone ``{name}``: may stand for a str or version too
        self.names = _expr_names(node)


def _split_value(key, value):
    """Segments of one template value; raises ``TemplateError`` naming ``key``."""
    segments, literal, i, placeholders = [], [], 0, 0
    where = "key %s" % key
    while i < len(value):
        ch = value[i]
        if value.startswith("{{", i) or value.startswith("}}", i):
            literal.append(ch)
            i += 2
            continue
        if ch == "}":
            raise TemplateError("%s: unmatched '}' at column %d in %r" % (where, i + 1, shorten(value)))
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        end = value.find("}", i + 1)
        inner_open = value.find("{", i + 1)
        if end < 0 or (0 <= inner_open < end):
            raise TemplateError("%s: unclosed '{' at column %d in %r" % (where, i + 1, shorten(value)))
        placeholders += 1
        if placeholders > MAX_PLACEHOLDERS_PER_VALUE:
            raise TemplateError("%s: more than %d placeholders" % (where, MAX_PLACEHOLDERS_PER_VALUE))
        if literal:
            segments.append(_Lit("".join(literal)))
            literal = []
        segments.append(_placeholder(where, value[i + 1:end]))
        i = end + 1
    if literal:
        segments.append(_Lit("".join(literal)))
    return segments


def _placeholder(where, body):
    """A ``_Decl`` for ``name:kind[:spec]`` or a ``_Ref`` for an expression."""
    if not body.strip():
        raise TemplateError("%s: empty placeholder {}" % where)
    if ":" in body:
        parts = body.split(":", 2)
        name, kind = parts[0].strip(), parts[1].strip()
        if not _NAME_RE.match(name):
            raise TemplateError("%s: bad variable name %r in {%s}" % (where, shorten(name, 30), shorten(body, 40)))
        if kind not in _KINDS:
            raise TemplateError("%s: unknown kind %r in {%s}; use one of %s"
                                % (where, shorten(kind, 20), shorten(body, 40), ", ".join(sorted(_KINDS))))
        try:
            return _Decl(_KINDS[kind](name, parts[2] if len(parts) > 2 else None))
        except TemplateError as exc:
            raise TemplateError("%s: %s" % (where, exc))
    try:
        node = _ExprParser(_tokenize(body)).parse()
    except TemplateError as exc:
        raise TemplateError("%s: bad expression {%s}: %s" % (where, shorten(body, 40), exc))
    ref = _Ref(node, bare=node[0] == "var")
    if not ref.names:
        # a constant in braces is neither a declaration nor a reference: write it as text
        raise TemplateError("%s: {%s} names no variable; write a constant without braces"
                            % (where, shorten(body, 40)))
    return ref


def _arithmetic(segments):
    """The expression of a whole value of references and arithmetic text, or None."""
    tokens = []
    for seg in segments:
        if isinstance(seg, _Ref):
            tokens.append(("sub", seg.node))
        elif set(seg.text) <= _ARITH_CHARS:
            tokens.extend(_tokenize(seg.text))
        else:
            return None
    try:
        return _ExprParser(tokens).parse()
    except _TooDeep:
        raise
    except TemplateError:
        return None


def _min_length(segment):
    """The fewest characters a segment matches (a reference is never empty)."""
    if isinstance(segment, _Lit):
        return len(segment.text)
    if isinstance(segment, _Decl):
        return segment.variable.min_length()
    return 1


class _Field(object):
    """One ``key=value`` of a compatible block, parsed.

    ``form`` is ``literal`` (no placeholders), ``pattern`` (declares
    variables), ``derived`` (an integer expression over variables) or
    ``text`` (references substituted into literal text).
    """

    def __init__(self, key, template):
        self.key, self.template = key, template
        self.segments = _split_value(key, template)
        self.declares = []     # variables declared here, in order
        self.references = []   # variables referred to here, in order
        self.needs = []        # referred to before (or without) a declaration in this value
        for seg in self.segments:
            if isinstance(seg, _Decl) and seg.variable.name not in self.declares:
                self.declares.append(seg.variable.name)
            elif isinstance(seg, _Ref):
                self.references.extend(n for n in seg.names if n not in self.references)
                self.needs.extend(n for n in seg.names if n not in self.declares and n not in self.needs)
        # min_tail[i]: the fewest characters segments[i:] can match (prunes the search)
        self.min_tail = [0] * (len(self.segments) + 1)
        for i in range(len(self.segments) - 1, -1, -1):
            self.min_tail[i] = self.min_tail[i + 1] + _min_length(self.segments[i])
        self.expression = None  # the AST of a derived value
        self.literal = None     # the text of a literal value, {{ and }} unescaped
        if self.declares:
            self.form = "pattern"
        elif self.references:
            self.form = "text"
        else:
            self.form = "literal"
            self.literal = "".join(seg.text for seg in self.segments)

    def describe(self):
        return {"template": self.template, "form": self.form,
                "declares": list(self.declares), "references": list(self.references)}


class _Block(object):
    """A parsed compatible block: fields, variables and the order to match them in."""

    def __init__(self, index, mapping):
        self.index = index
        self.fields = [_Field(key, _value_text(key, value)) for key, value in mapping.items()]
        self.variables = {}
        declared_in = {}
        for field in self.fields:
            for seg in field.segments:
                if not isinstance(seg, _Decl):
                    continue
                var = seg.variable
                known = self.variables.get(var.name)
                if known is None:
                    if len(self.variables) >= MAX_VARIABLES_PER_BLOCK:
                        raise TemplateError("more than %d variables in one block" % MAX_VARIABLES_PER_BLOCK)
                    self.variables[var.name] = var
                    declared_in[var.name] = [field.key]
                elif known.signature() != var.signature():
                    raise TemplateError("variable %s is declared twice with different values: {%s:%s%s} in %s "
                                        "and {%s:%s%s} in %s"
                                        % (var.name, var.name, known.kind, _spec_suffix(known), declared_in[var.name][0],
                                           var.name, var.kind, _spec_suffix(var), field.key))
                elif field.key not in declared_in[var.name]:
                    declared_in[var.name].append(field.key)
        self.declared_in = declared_in
        for field in self.fields:
            self._check_references(field)
            if field.form == "text" and all(self.variables[n].kind == "int" for n in field.references):
                try:
                    field.expression = _arithmetic(field.segments)
                except _TooDeep as exc:
                    raise TemplateError("key %s: %s" % (field.key, exc))
                if field.expression is not None:
                    field.form = "derived"
        self.plain = [f for f in self.fields if f.form == "literal"]
        self.patterns = self._pattern_order()
        self.computed = [f for f in self.fields if f.form in ("derived", "text")]

    def _check_references(self, field):
        for seg in field.segments:
            if not isinstance(seg, _Ref):
                continue
            for name in seg.names:
                if name not in self.variables:
                    raise TemplateError("key %s: reference to undeclared variable %s in '%s'"
                                        % (field.key, name, shorten(field.template)))
                if not seg.bare and self.variables[name].kind != "int":
                    raise TemplateError("key %s: variable %s is %s and cannot be used in arithmetic"
                                        % (field.key, name, self.variables[name].kind))
        if field.form == "pattern":
            for name in field.needs:
                if self.declared_in[name] == [field.key]:
                    raise TemplateError("key %s: {%s} is used before it is declared" % (field.key, name))

    def _pattern_order(self):
        """Pattern fields so that each one's references are bound before it is matched."""
        pending = [f for f in self.fields if f.form == "pattern"]
        order, bound = [], set()
        while pending:
            for field in pending:
                if all(n in bound for n in field.needs):
                    break
            else:
                raise TemplateError("keys %s refer to each other's variables in a circle"
                                    % ", ".join(f.key for f in pending))
            pending.remove(field)
            order.append(field)
            bound.update(field.declares)
        return order

    def describe(self):
        variables = {}
        for name, var in self.variables.items():
            variables[name] = var.describe()
            variables[name]["declared_in"] = list(self.declared_in[name])
        return {"index": self.index,
                "fields": {f.key: f.describe() for f in self.fields},
                "variables": variables}


def _spec_suffix(var):
    return "" if var.spec is None else ":" + var.spec


def _value_text(key, value):
    """A layout value as text: strings as they are, integers in decimal."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TemplateError("value of key %s must be a string, not %s" % (shorten(key, 40), type(value).__name__))


def _layout_blocks(data, side):
    """``data`` as a list of mappings: parse text, check lists of dicts."""
    if isinstance(data, str):
        try:
            return parse_kv_blocks(str(data))
        except ValueError as exc:
            raise TemplateError("%s: %s" % (side, exc))
    if isinstance(data, (list, tuple)):
        blocks = []
        for i, block in enumerate(data):
            if not hasattr(block, "items") or isinstance(block, (str, bytes)):
                raise TemplateError("%s: block %d must be a mapping of key=value, not %s"
                                    % (side, i, type(block).__name__))
            blocks.append(block)
        return blocks
    raise TemplateError("%s must be key=value text or a list of mappings, not %s" % (side, type(data).__name__))


def _parse_blocks(data):
    blocks = []
    for i, mapping in enumerate(_layout_blocks(data, "compatible")):
        for key in mapping:
            if not isinstance(key, str) or not LAYOUT_KEY_RE.match(key) or "\n" in key:
                raise TemplateError("compatible block %d: bad key %r" % (i, shorten(key, 40)))
        try:
            blocks.append(_Block(i, mapping))
        except TemplateError as exc:
            raise TemplateError("compatible block %d: %s" % (i, exc))
    return blocks


def parse_compatible(data):
    """Parse a ``migration/compatible`` layout and its templates, for reports.

    ``data`` is the file's text or an already parsed list of mappings.
    Returns one dict per block::

        {"index": 0,
         "fields": {"type": {"template": "i915-GVTg_V5_{val1:int:1,2,4,8}",
                             "form": "pattern", "declares": ["val1"], "references": []},
                    "aggregator": {"template": "{val1}/2", "form": "derived",
                                   "declares": [], "references": ["val1"]},
                    "pci_id": {"template": "80865963", "form": "literal", ...}},
         "variables": {"val1": {"name": "val1", "kind": "int", "spec": "1,2,4,8",
                                "values": [1, 2, 4, 8], "ranges": [],
                                "declared_in": ["type"]}}}

    ``form`` is ``literal``, ``pattern`` (declares variables), ``derived``
    (an integer expression) or ``text`` (references substituted into text).
    str variables carry ``values`` (None for any), version variables
    ``constraints`` (``[op, "x.y.z"]`` pairs). Raises ``TemplateError`` (a
    ``ValueError``) on a malformed layout or template.
    """
    return [block.describe() for block in _parse_blocks(data)]


# -- matching ---------------------------------------------------------------

class _Search(object):
    """Backtracking match of one block against a source's ``self`` values."""

    def __init__(self, block, self_values):
        self.block, self.values = block, self_values
        self.steps = 0
        self.failure_depth, self.failure = -1, None

    def fail(self, depth, reason):
        if depth > self.failure_depth:
            self.failure_depth, self.failure = depth, reason

    def tick(self):
        self.steps += 1
        if self.steps > MAX_MATCH_STEPS:
            raise TemplateError("compatible block %d: template too ambiguous to match (more than %d steps)"
                                % (self.block.index, MAX_MATCH_STEPS))

    def run(self):
        """The variable bindings of a match, or None (then ``failure`` says why)."""
        return self._patterns(0, {})

    def _patterns(self, depth, bindings):
        if depth == len(self.block.patterns):
            return self._computed(depth, bindings)
        field = self.block.patterns[depth]
        text = self.values[field.key]
        for found in self._field(field, text, bindings):
            result = self._patterns(depth + 1, found)
            if result is not None:
                return result
        self.fail(depth, "%s '%s' does not match '%s'%s"
                  % (field.key, shorten(text), shorten(field.template), _with(field.references, bindings)))
        return None

    def _computed(self, depth, bindings):
        for offset, field in enumerate(self.block.computed):
            text = self.values[field.key]
            try:
                if field.form == "derived":
                    number = _evaluate(field.expression, bindings)
                    ok = (len(text) <= MAX_INT_DIGITS + 1 and _SIGNED_INT_RE.match(text) is not None
                          and text != "-0" and int(text) == number)
                    expected = _show_int(number)
                else:
                    expected = "".join(self._segment_text(seg, bindings) for seg in field.segments)
                    ok = text == expected
            except _NoValue as exc:
                self.fail(depth + offset, "%s '%s' does not match '%s' (%s%s)"
                          % (field.key, shorten(text), shorten(field.template), exc, _with(field.references, bindings)))
                return None
            if not ok:
                self.fail(depth + offset, "%s '%s' does not match '%s' (expected '%s'%s)"
                          % (field.key, shorten(text), shorten(field.template), shorten(expected),
                             _with(field.references, bindings)))
                return None
        return bindings

    def _segment_text(self, seg, bindings):
        if isinstance(seg, _Lit):
            return seg.text
        if seg.bare:
            name = seg.names[0]
            return self.block.variables[name].text_of(bindings[name])
        number = _evaluate(seg.node, bindings)
        if number.bit_length() > _MAX_TEXT_BITS:
            raise _NoValue("%s is longer than any value" % _show_int(number))
        return str(number)

    def _field(self, field, text, bindings):
        """Yield every binding under which the pattern ``field`` matches ``text``."""
        # cheap necessary conditions first: the literal pieces appear in order,
        # the first one starts the text and the last one ends it
        pos = 0
        for i, seg in enumerate(field.segments):
            if isinstance(seg, _Lit):
                found = text.find(seg.text, pos)
                if found < 0 or (i == 0 and found != 0):
                    return
                pos = found + len(seg.text)
        last = field.segments[-1]
        if isinstance(last, _Lit) and not text.endswith(last.text):
            return
        yield from self._segments(field, 0, text, 0, bindings)

    def _segments(self, field, i, text, pos, bindings):
        """Yield every binding under which ``field.segments[i:]`` match ``text[pos:]`` exactly."""
        self.tick()
        segments = field.segments
        if len(text) - pos < field.min_tail[i]:
            return
        if i == len(segments):
            if pos == len(text):
                yield bindings
            return
        seg = segments[i]
        if isinstance(seg, _Decl) and seg.variable.name not in bindings:
            var = seg.variable
            follow = segments[i + 1].text if i + 1 < len(segments) and isinstance(segments[i + 1], _Lit) else None
            for end, value in var.candidates(text, pos):
                self.tick()
                if follow is not None and not text.startswith(follow, end):
                    continue
                if follow is None and i + 1 == len(segments) and end != len(text):
                    continue
                extended = dict(bindings)
                extended[var.name] = value
                yield from self._segments(field, i + 1, text, end, extended)
            return
        if isinstance(seg, _Decl):
            want = seg.variable.text_of(bindings[seg.variable.name])
        else:
            try:
                want = self._segment_text(seg, bindings)
            except _NoValue:
                return
        if text.startswith(want, pos):
            yield from self._segments(field, i + 1, text, pos + len(want), bindings)


def _with(names, bindings):
    shown = ["%s=%s" % (n, shorten(bindings[n], 40)) for n in names if n in bindings]
    return " with %s" % ", ".join(shown) if shown else ""


def _literal_matches(key, template, value):
    if key == SOFTWARE_VERSION_KEY:
        want, have = _version_tuple(template), _version_tuple(value)
        if want is not None and have is not None:
            return want == have
    return template == value


def _self_values(self_block):
    """The source's ``self`` as ``{key: text}``: a mapping or one block of text."""
    if isinstance(self_block, str):
        blocks = _layout_blocks(self_block, "self")
        if len(blocks) != 1:
            raise TemplateError("self must be exactly one block of key=value lines, found %d" % len(blocks))
        self_block = blocks[0]
    if not hasattr(self_block, "items") or isinstance(self_block, (bytes, list, tuple)):
        raise TemplateError("self must be key=value text or a mapping, not %s" % type(self_block).__name__)
    values = {}
    for key, value in self_block.items():
        if not isinstance(key, str):
            raise TemplateError("self: key %r must be a string" % (shorten(key, 40),))
        try:
            values[str(key)] = _value_text(key, value)
        except TemplateError as exc:
            raise TemplateError("self: %s" % exc)
    return values


def _match_block(block, values):
    """``(bindings, None)`` when ``block`` matches ``values``, else ``(None, reason)``."""
    missing = [f.key for f in block.fields if f.key not in values]
    if missing:
        return None, "missing key%s %s in self" % ("s" if len(missing) > 1 else "", ", ".join(missing))
    for field in block.plain:
        if not _literal_matches(field.key, field.literal, values[field.key]):
            return None, "%s '%s' does not match '%s'" % (field.key, shorten(values[field.key]), shorten(field.template))
    search = _Search(block, values)
    bindings = search.run()
    if bindings is None:
        return None, search.failure
    return bindings, None


def compatible_match(self_block, compatible_blocks):
    """Does a source device's ``migration/self`` match a target's ``migration/compatible``?

    ``self_block`` is a mapping (or one block of ``key=value`` text);
    ``compatible_blocks`` a list of mappings (or the file's text, several
    blocks separated by blank lines). The source matches when ANY block
    matches; a block matches when every one of its keys is in ``self`` and
    each value matches under one binding of the block's variables. Keys of
    ``self`` that a block does not mention are ignored. Blocks are tried in
    order and the first match wins. Returns::

        {"match": True, "block": 0, "bindings": {"val1": 4},
         "reasons": []}                       # why each earlier block failed
        {"match": False, "block": None, "bindings": {},
         "reasons": ["block 0: type 'i915-GVTg_V5_3' does not match 'i915-GVTg_V5_{val1:int:1,2,4,8}'",
                     "block 1: missing key aggregator in self"]}

    Int variables bind to ints, str and version variables to strings. Every
    block is parsed before any is matched, so a malformed template anywhere
    raises ``TemplateError`` (a ``ValueError``), as does a ``self`` that is
    not a mapping of strings.
    """
    values = _self_values(self_block)
    blocks = _parse_blocks(compatible_blocks)
    reasons = []
    for block in blocks:
        bindings, reason = _match_block(block, values)
        if bindings is not None:
            return {"match": True, "block": block.index, "bindings": dict(bindings), "reasons": reasons}
        reasons.append("block %d: %s" % (block.index, reason))
    if not blocks:
        reasons.append("compatible has no blocks")
    return {"match": False, "block": None, "bindings": {}, "reasons": reasons}
