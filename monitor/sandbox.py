"""The budget every template renders under: time, loop iterations, output, value sizes.

Rule annotations and message templates run in Jinja2's sandbox, which refuses access
to Python internals (``__class__``, ``__globals__``…). The sandbox does not bound what
a template may *compute*: two nested loops over ``range(99999)`` run for minutes,
``{{ 'a'|center(1500000000) }}`` allocates gigabytes. :class:`BudgetedSandbox` (mixed
into both sandboxes) renders every template under a :class:`Budget` built from
:class:`TemplateLimits` (``[templates]`` in the config):

``timeout``          wall-clock time one render may take (a message: all its parts)
``max_iterations``   loop iterations, all loops and lazy sequences together
``max_output``       characters the template writes, into the message, a macro or a block
``max_value_size``   characters (of a string) or items (of a list or mapping, counting
                     the items of the lists inside it) of any value a filter, method,
                     operator or literal builds
``max_built``        characters and items of every value built, added up

It is enforced at the sandbox's hooks, so nothing the template does escapes it:

1. parsing instruments the template: every ``{% for %}`` iterates through a counter,
   every ``{{ … }}`` and literal text is charged to the output, every ``~`` and
   literal list is size-checked (:class:`_Instrument`);
2. every attribute access, call and operator checks the clock;
3. calls of filters, globals and methods that build from a width or a count
   (``center``, ``ljust``, ``indent``, ``wordwrap``, ``replace``, ``join``, ``format``,
   ``%``, ``*``, ``batch``, ``range``, ``lipsum``, ``strftime``…) have the size of their
   result computed *before* they run; everything else is checked after;
4. turning a value into text (output, ``~``, text filters, format fields) first
   estimates its length, so a list holding one large string a million times is refused
   before it is printed.

Exceeding any limit raises :class:`BudgetExceeded` (a ``SecurityError``, hence a
``TemplateError``) naming the limit and its setting. A render never raises anything
but a ``TemplateError``: ``OverflowError``, ``ZeroDivisionError``, ``MemoryError`` and
``RecursionError`` raised inside a template are turned into one, with the template
line. Callers fall back (the plain message body, ``(template error: …)`` in an
annotation) and never lose the alert.

The limits are process-wide (:func:`configure`, called when the config is loaded);
a budget covers one :meth:`BudgetedTemplate.render`, or everything rendered inside
one :func:`budget` block (a message and all its parts).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from datetime import time as dtime
from typing import Any, cast

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateRuntimeError
from jinja2.filters import do_join, make_attrgetter
from jinja2.runtime import Context, LoopContext, Undefined, markup_join, str_join
from jinja2.sandbox import (
    SandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
    modifies_known_mutable,
)
from jinja2.utils import (
    Namespace,
    generate_lorem_ipsum,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2.visitor import NodeTransformer
from markupsafe import Markup
from pydantic import Field, field_validator

from monitor.configtypes import Duration, Section, format_duration

MAX_BITS = 100_000  # size of an integer a power or a product may build
MAX_DEPTH = 100  # nesting of lists estimated before a value counts as too large
_OTHER_SIZE = 32  # the text of a number, a date or an object, roughly
_WORDWRAP_WORK = 20_000_000_000  # textwrap cuts a long word in len²/width steps


class TemplateLimits(Section):
    """``[templates]``: the budget of one render (see the module docstring)."""

    timeout: Duration = 5.0
    max_iterations: int = Field(default=100_000, ge=1)
    max_output: int = Field(default=10_000_000, ge=1)
    max_value_size: int = Field(default=1_000_000, ge=1)
    max_built: int = Field(default=10_000_000, ge=1)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("templates.timeout must be more than 0")
        return value


_LIMITS = TemplateLimits()
_CONFIGURE = threading.Lock()


def configure(limits: TemplateLimits) -> None:
    """Make ``limits`` the budget of every render from now on (config load and reload)."""
    global _LIMITS
    with _CONFIGURE:
        _LIMITS = limits


def limits() -> TemplateLimits:
    """Return the limits renders currently run under."""
    return _LIMITS


class BudgetExceeded(SecurityError):
    """A template went over its budget; the message names the limit and its setting."""


# --- the budget -------------------------------------------------------------------------


class Budget:
    """The counters of one render (or of one message's renders) against its limits.

    Every check raises BudgetExceeded once a limit is passed, and keeps raising it: a
    template cannot catch the error and carry on.
    """

    def __init__(self, limits: TemplateLimits,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.limits = limits
        self._clock = clock
        self.deadline = clock() + limits.timeout
        self.iterations = 0
        self.output = 0
        self.built = 0
        self.failure = ""
        # id -> (value, size) of the lists, tuples, sets and dicts the render built that
        # hold other lists (a flat one's size is its length); the value is held so its id
        # is not reused, and entries nothing else holds are swept (see _remember).
        self._sizes: dict[int, tuple[Any, int]] = {}
        self._sweep_at = 1024

    def fail(self, message: str) -> BudgetExceeded:
        """Record the first limit passed; return the error to raise."""
        if not self.failure:
            self.failure = f"template budget exceeded: {message}"
        return BudgetExceeded(self.failure)

    def tick(self) -> None:
        """Raise BudgetExceeded when the render is over time (or already over budget)."""
        if self.failure:
            raise BudgetExceeded(self.failure)
        if self._clock() > self.deadline:
            raise self.fail(f"rendering took longer than "
                            f"{format_duration(self.limits.timeout)} (templates.timeout)")

    def iterate(self) -> None:
        """Count one loop iteration."""
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise self.fail(f"more than {self.limits.max_iterations:,} loop iterations "
                            "(templates.max_iterations)")
        self.tick()

    def emit(self, characters: int) -> None:
        """Count ``characters`` of output."""
        self.output += characters
        if self.output > self.limits.max_output:
            raise self.fail(f"more than {self.limits.max_output:,} characters of output "
                            "(templates.max_output)")

    def allow(self, what: str, size: int) -> None:
        """Raise BudgetExceeded when ``what`` would build a value of ``size``."""
        if size > self.limits.max_value_size:
            raise self.fail(f"{what} would build a value of {size:,} characters or items; "
                            f"at most {self.limits.max_value_size:,} "
                            "(templates.max_value_size)")

    def text(self, what: str, value: Any) -> int:
        """Return the length ``value`` has as text; raise when it is over the limit."""
        size = text_size(value, self.limits.max_value_size)
        self.allow(what, size)
        return size

    def made(self, what: str, value: Any) -> Any:
        """Check and count a value the template built; return it (iterators counted)."""
        if isinstance(value, str | bytes | bytearray):
            size = len(value)
            self.allow(what, size)
        elif isinstance(value, _CONTAINERS):
            size = self.items(value)
            self.allow(what, size)
            if size > len(value) + 1:
                self._remember(value, size)
            size = max(1, len(value))
        elif isinstance(value, int) and not isinstance(value, bool) \
                and value.bit_length() > MAX_BITS:
            raise self.fail(f"{what} would build a number of {value.bit_length():,} bits; "
                            f"at most {MAX_BITS:,} (a fixed limit)")
        elif isinstance(value, Iterator) and not isinstance(value, Counted | LoopContext):
            return Counted(value, self)
        else:
            return value
        self.built += size
        if self.built > self.limits.max_built:
            raise self.fail(f"the values built add up to more than {self.limits.max_built:,} "
                            "characters and items (templates.max_built)")
        return value

    def items(self, value: Any) -> int:
        """Return the items of a container, counting again the items of the lists inside
        it (what comparing or hashing it walks): of a list this render built that holds
        lists, as counted when it was built; of any other, its length."""
        if isinstance(value, dict):
            members: Iterable[Any] = (*value.keys(), *value.values())
        else:
            members = value
        total = 1
        sizes = self._sizes
        for member in members:
            known = sizes.get(id(member))
            if known is not None and known[0] is member:
                total += known[1]
            elif isinstance(member, _CONTAINERS):
                total += len(member) + 1
            else:
                total += 1
        return total

    def _remember(self, value: Any, size: int) -> None:
        sizes = self._sizes
        sizes[id(value)] = (value, size)
        if len(sizes) >= self._sweep_at:
            # Forget the values only this table still holds: the template dropped them,
            # so they can never be nested again (references: the table's tuple, the loop
            # variable, the argument). Forgetting a list may free the lists inside it.
            dropped = True
            while dropped:
                gone = [k for k, (v, _) in sizes.items() if sys.getrefcount(v) <= 3]
                for key in gone:
                    del sizes[key]
                dropped = bool(gone)
            self._sweep_at = max(1024, 2 * len(sizes))


_CONTAINERS = (list, tuple, set, frozenset, dict, deque)
_ITEMS: type = type({}.items())
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), _ITEMS)
_ACTIVE: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def budget(limits: TemplateLimits | None = None,
           clock: Callable[[], float] = time.perf_counter) -> Iterator[Budget]:
    """Render everything inside the block under one budget (the active one, if any);
    ``limits`` default to the configured ones, ``clock`` (seconds) to the wall clock."""
    active = _ACTIVE.get()
    if active is not None:
        yield active
        return
    fresh = Budget(limits or _LIMITS, clock)
    token = _ACTIVE.set(fresh)
    try:
        yield fresh
    finally:
        _ACTIVE.reset(token)


def current() -> Budget:
    """Return the active budget (outside a render: a fresh one for this call alone)."""
    return _ACTIVE.get() or Budget(_LIMITS)


def text_size(value: Any, limit: int) -> int:
    """Return about ``len(str(value))``, computed without building it.

    Shared values count each time they would be printed; counting stops soon after
    ``limit``, and nesting deeper than MAX_DEPTH counts as ``limit + 1``.
    """
    memo: dict[int, int] = {}

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str | bytes | bytearray):
            return len(item)
        if isinstance(item, bool) or item is None:
            return 5
        if isinstance(item, int):
            return item.bit_length() * 3 // 10 + 2
        if isinstance(item, Namespace):  # prints as <Namespace {…}>
            return 12 + size(object.__getattribute__(item, "_Namespace__attrs"), depth + 1)
        if not isinstance(item, _CONTAINERS + _VIEWS):
            return _OTHER_SIZE
        key = id(item)
        if key in memo:
            return memo[key]
        if depth > MAX_DEPTH:
            return limit + 1
        memo[key] = 5  # while counting it: a list inside itself prints as [...]
        total = 2
        if isinstance(item, dict | _ITEMS):
            # Key and value apart: a pair made while iterating dies at once and a later
            # one may get its id, so a pair must never be remembered.
            pairs: Iterable[tuple[Any, Any]] = item.items() if isinstance(item, dict) \
                else cast(Iterable[tuple[Any, Any]], item)
            for first, second in pairs:
                total += 4 + size(first, depth + 1) + size(second, depth + 1)
                if total > limit:
                    break
        else:
            for member in cast(Iterable[Any], item):
                total += 2 + size(member, depth + 1)
                if total > limit:
                    break
        memo[key] = total
        return total

    return size(value, 0)


class Counted(Iterator[Any]):
    """An iterator that counts each item it yields against the budget."""

    def __init__(self, iterator: Iterator[Any], owner: Budget | None = None) -> None:
        self._iterator = iterator
        self._owner = owner

    def __iter__(self) -> Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._iterator)
        (self._owner or current()).iterate()
        return item


class BoundedRange:
    """``range()`` in templates: at most ``max_iterations`` numbers, each one counted."""

    def __init__(self, *args: int) -> None:
        self._range = range(*args)
        limit = current().limits.max_iterations
        if len(self._range) > limit:
            raise current().fail(f"range() of {len(self._range):,} numbers; at most "
                                 f"{limit:,} (templates.max_iterations)")

    def __iter__(self) -> Iterator[int]:
        return Counted(iter(self._range))

    def __reversed__(self) -> Iterator[int]:
        return Counted(reversed(self._range))

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: int) -> int:
        return self._range[index]

    def __contains__(self, item: object) -> bool:
        return item in self._range

    def __repr__(self) -> str:
        return repr(self._range)

    def __getattr__(self, name: str) -> Any:  # start, stop, step, count(), index()
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._range, name)


def _counted(value: Any) -> Any:
    if isinstance(value, Undefined | Counted | BoundedRange):
        return value
    return Counted(iter(value))


def _materialize(value: Any) -> list[Any]:
    """Return the items of ``value`` as a list, each counted as an iteration."""
    if isinstance(value, list | tuple | Undefined):
        return list(value)
    return list(_counted(value))


# --- estimating before building ------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


_PERCENT = re.compile(r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?"
                      r"(?:\.(?P<precision>\*|\d+))?[hlL]?(?P<conversion>[a-zA-Z%])")
_NUMBERS = re.compile(r"\d+")


def percent_size(template: str, args: Any, limit: int) -> int:
    """Return about the length of ``template % args`` without formatting it."""
    mapping = args if isinstance(args, Mapping) else None
    positional = list(args) if isinstance(args, tuple) else [args]
    total = len(template)
    index = 0

    def take() -> Any:
        nonlocal index
        index += 1
        return positional[index - 1] if index <= len(positional) else None

    for found in _PERCENT.finditer(template):
        if found.group("conversion") == "%":
            continue
        width = found.group("width")
        precision = found.group("precision")
        pad = max(_int(take() if width == "*" else width),
                  _int(take() if precision == "*" else precision))
        key = found.group("key")
        value = mapping.get(key) if mapping is not None and key is not None else take()
        total += pad + text_size(value, limit)
        if total > limit:
            break
    return total


def _spec_size(spec: str) -> int:
    """Return the widest a format spec (``>20``, ``.3f``, ``%Y-%m-%d``) can make a field."""
    widest = max((int(n) for n in _NUMBERS.findall(spec)), default=0)
    return widest + 16 * len(spec)


class _FormatterBudget(string.Formatter):
    """``str.format`` that estimates each field before formatting it."""

    _total = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        owner = current()
        owner.tick()
        self._total += _spec_size(format_spec) + text_size(value, owner.limits.max_value_size)
        owner.allow("format()", self._total)
        return super().format_field(value, format_spec)


class _Formatter(_FormatterBudget, SandboxedFormatter):
    pass


class _EscapeFormatter(_FormatterBudget, SandboxedEscapeFormatter):
    pass


def _replace_size(text: str, old: Any, new: Any, count: Any) -> int:
    old_s, new_s = str(old), str(new)
    times = text.count(old_s) if old_s else len(text) + 1
    limit = _int(count, -1)
    if limit >= 0:
        times = min(times, limit)
    return len(text) + times * max(0, len(new_s) - len(old_s))


def _join_size(parts: list[Any], separator: Any, limit: int) -> int:
    total = len(str(separator)) * max(0, len(parts) - 1)
    for part in parts:
        total += text_size(part, limit)
        if total > limit:
            break
    return total


def _translate_size(text: str, table: Any) -> int:
    widest = 1
    if isinstance(table, Mapping):
        widest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    return len(text) * max(1, widest)


def _wordwrap_check(owner: Budget, text: str, width: Any, wrapstring: Any) -> None:
    columns = max(1, _int(width, 79))
    lines = len(text) // columns + text.count("\n") + 1
    owner.allow("wordwrap", len(text) + lines * len(str(wrapstring or "\n")))
    if len(text) * len(text) // columns > _WORDWRAP_WORK:
        raise owner.fail(f"wordwrap of {len(text):,} characters at width {columns} would "
                         "take too long (templates.max_value_size)")


def _indent_size(text: str, width: Any) -> int:
    pad = len(width) if isinstance(width, str) else _int(width, 4)
    return len(text) + (text.count("\n") + 1) * pad


# Filters that read values without turning them into text; every other filter has the
# text length of its input checked before it runs.
_NOT_TEXT = frozenset(["abs", "attr", "batch", "count", "d", "default", "dictsort", "first",
                       "float", "groupby", "int", "items", "last", "length", "list", "map",
                       "max", "min", "random", "reject", "rejectattr", "reverse", "round",
                       "select", "selectattr", "slice", "sort", "sum", "unique"])


def _check_filter(name: str, owner: Budget, args: dict[str, Any]) -> None:
    """Raise BudgetExceeded when filter ``name`` would build too large a value; may
    replace lazy arguments with the lists they produce (``join``)."""
    limit = owner.limits.max_value_size
    what = f"the {name} filter"
    first = next(iter(args.values()), None)
    text = str(first) if isinstance(first, str) else ""
    if name == "center":
        owner.allow(what, max(len(text), _int(args.get("width", 80))))
    elif name == "indent":
        owner.allow(what, _indent_size(text, args.get("width", 4)))
    elif name == "wordwrap":
        _wordwrap_check(owner, text, args.get("width", 79), args.get("wrapstring"))
    elif name == "replace":
        owner.allow(what, _replace_size(text, args.get("old", ""), args.get("new", ""),
                                        args.get("count")))
    elif name == "format":
        rest = args.get("kwargs") or args.get("args") or ()
        owner.allow(what, percent_size(text, rest, limit))
    elif name == "batch":
        owner.allow(what, _int(args.get("linecount", 1)))
    elif name == "urlize":
        owner.allow(what, 10 * len(text))
    elif name == "time":
        owner.allow(what, 16 * len(str(args.get("fmt", ""))) + _OTHER_SIZE)


@pass_eval_context
def _bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    """Jinja's ``join``, with its items counted and the result's length known first."""
    owner = current()
    items = _materialize(value)
    if attribute is not None:
        getter = make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    owner.allow("the join filter", _join_size(items, d, owner.limits.max_value_size))
    return str(do_join(eval_ctx, items, d))


@pass_environment
def _bounded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0
                 ) -> Any:
    """Jinja's ``sum``; lists and tuples are added in linear time, their size known first."""
    items = _materialize(iterable)
    if attribute is not None:
        getter = make_attrgetter(environment, attribute)
        items = [getter(item) for item in items]
    if not isinstance(start, list | tuple):
        return sum(items, start)
    owner = current()
    owner.allow("the sum filter", len(start) + sum(_int(len(i)) if hasattr(i, "__len__")
                                                   else 1 for i in items))
    out = list(start)
    for item in items:
        if not isinstance(item, type(start)):
            raise TypeError(f'can only concatenate {type(start).__name__} (not '
                            f'"{type(item).__name__}") to {type(start).__name__}')
        out.extend(item)
    return tuple(out) if isinstance(start, tuple) else out


_REPLACED: dict[str, Callable[..., Any]] = {"join": _bounded_join, "sum": _bounded_sum}


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Return filter ``func`` checked against the active budget (see the module doc).

    The wrapper takes the context, whatever ``func`` takes, so Jinja never runs a filter
    at compile time to fold constants: ``{{ ('a'|center(999999))|list }}`` would
    otherwise be computed outside any render and written into the compiled code.
    """
    func = _REPLACED.get(name, func)
    passes = getattr(getattr(func, "jinja_pass_arg", None), "name", "")
    signature = inspect.signature(func)
    checks_text = name not in _NOT_TEXT

    @pass_context
    @functools.wraps(func)
    def bounded(context: Context, *args: Any, **kwargs: Any) -> Any:
        owner = current()
        owner.tick()
        if checks_text and args and not isinstance(args[0], Undefined):
            owner.text(f"the {name} filter", args[0])
        lead: tuple[Any, ...] = {"context": (context,), "eval_context": (context.eval_ctx,),
                                 "environment": (context.environment,)}.get(passes, ())
        try:
            bound = signature.bind(*lead, *args, **kwargs)
        except TypeError:
            return func(*lead, *args, **kwargs)  # the filter reports its own usage error
        arguments = dict(bound.arguments)
        if lead:
            arguments.pop(next(iter(signature.parameters)))
        _check_filter(name, owner, arguments)
        return owner.made(f"the {name} filter", func(*lead, *args, **kwargs))

    return bounded


class BoundedFilters(dict[str, Callable[..., Any]]):
    """An environment's filters, each wrapped by :func:`bounded_filter` when added."""

    def __setitem__(self, name: str, func: Callable[..., Any]) -> None:
        if not name.startswith("budget."):
            func = bounded_filter(name, func)
        super().__setitem__(name, func)


def _check_method(owner: Budget, method: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Raise BudgetExceeded when calling ``method`` would build too large a value;
    return the arguments to call it with (a lazy ``join`` argument made a list)."""
    holder = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    what = f"{type(holder).__name__}.{name}()"

    def arg(index: int, key: str, default: Any) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if isinstance(holder, str | bytes | bytearray):
        size = len(holder)
        if name in ("center", "ljust", "rjust", "zfill"):
            size = max(size, _int(arg(0, "width", 0)))
        elif name == "expandtabs":
            tab = b"\t" if isinstance(holder, bytes | bytearray) else "\t"
            size += holder.count(tab) * _int(arg(0, "tabsize", 8))  # type: ignore[arg-type]
        elif name == "join":
            parts = _materialize(arg(0, "iterable", ()))
            args = (parts, *args[1:])
            size = _join_size(parts, holder, owner.limits.max_value_size)
        elif name == "replace" and isinstance(holder, str):
            size = _replace_size(holder, arg(0, "old", ""), arg(1, "new", ""),
                                 arg(2, "count", -1))
        elif name == "replace":
            size = len(holder) * (1 + len(arg(1, "new", b"")))
        elif name == "translate" and isinstance(holder, str):
            size = _translate_size(holder, arg(0, "table", None))
        owner.allow(what, size)
    elif isinstance(holder, int) and name == "to_bytes":
        owner.allow(what, _int(arg(0, "length", 1)))
    elif isinstance(holder, date | dtime) and name == "strftime":
        owner.allow(what, 16 * len(str(arg(0, "format", ""))) + _OTHER_SIZE)
    return args


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Raise BudgetExceeded when ``left <operator> right`` would build too large a value."""
    owner = current()
    what = f"the {operator} operator"
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                size = len(seq) * times
                if isinstance(seq, list | tuple):
                    size = max(size, (owner.items(seq) - 1) * times)
                owner.allow(what, size)
        if isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > MAX_BITS:
            raise owner.fail(f"{what} would build a number of about "
                             f"{left.bit_length() + right.bit_length():,} bits; "
                             f"at most {MAX_BITS:,} (a fixed limit)")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) \
            and not isinstance(left, bool) and abs(left) > 1 \
            and right * math.log2(abs(left)) > MAX_BITS:
        raise owner.fail(f"{what} would build a number of about "
                         f"{right * math.log2(abs(left)):,.0f} bits; at most {MAX_BITS:,} "
                         "(a fixed limit)")
    elif operator == "%" and isinstance(left, str):
        owner.allow(what, percent_size(left, right, owner.limits.max_value_size))
    elif operator == "+" and isinstance(left, str | bytes | list | tuple) \
            and isinstance(right, str | bytes | list | tuple):
        owner.allow(what, len(left) + len(right))


# --- the hooks the instrumented template calls -----------------------------------------


@pass_context
def _loop(context: Context, value: Any) -> Any:
    return _counted(value)


@pass_context
def _literal(context: Context, characters: int) -> Markup:
    current().emit(characters)
    return Markup("")


@pass_context
def _out(context: Context, value: Any) -> Any:
    if isinstance(value, Undefined):
        return value
    owner = current()
    owner.tick()
    owner.emit(text_size(value, owner.limits.max_output))
    return value


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    owner = current()
    owner.tick()
    limit = owner.limits.max_value_size
    total = 0
    for part in parts:
        if not isinstance(part, Undefined):
            total += text_size(part, limit)
    owner.allow("the ~ operator", total)
    joined = markup_join(parts) if context.eval_ctx.autoescape else str_join(parts)
    return owner.made("the ~ operator", joined)  # type: ignore[no-any-return]


@pass_context
def _built(context: Context, value: Any) -> Any:
    return current().made("a literal", value)


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Route a template's loops, output, ``~`` and literal lists through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _filter(node.iter, "budget.loop")
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        literal = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        children: list[nodes.Expr] = [
            n if isinstance(n, nodes.TemplateData) else _filter(n, "budget.out")
            for n in node.nodes]
        if literal:
            children.insert(0, _filter(nodes.Const(literal, lineno=node.lineno),
                                       "budget.literal"))
        node.nodes = children
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "budget.concat")

    def _literal(self, node: nodes.Node) -> nodes.Node:
        assert isinstance(node, nodes.Expr)
        self.generic_visit(node)
        return _filter(node, "budget.built")

    visit_List = visit_Dict = _literal

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":  # a loop's or an assignment's targets
            return self.generic_visit(node)
        return self._literal(node)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    current().allow("lipsum()", _int(n) * _int(max) * 12)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- the environment ----------------------------------------------------------------


def _template_line(exc: BaseException) -> int | None:
    """Return the template line an exception was raised from (None if unknown)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def as_template_error(exc: Exception) -> TemplateError:
    """Return ``exc``, raised while rendering, as a TemplateError naming its template line."""
    if isinstance(exc, TemplateError):
        return exc
    line = _template_line(exc)
    where = f" (template line {line})" if line else ""
    if isinstance(exc, RecursionError):
        return BudgetExceeded("template budget exceeded: macros or loops nested too deeply "
                              f"(RecursionError){where}")
    if isinstance(exc, MemoryError):
        return BudgetExceeded(f"template budget exceeded: out of memory (MemoryError){where}")
    return TemplateRuntimeError(f"{type(exc).__name__}: {exc}{where}")


class BudgetedTemplate(Template):
    """A template whose :meth:`render` runs under a budget and raises only TemplateError."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        with budget():
            ctx = self.new_context(dict(*args, **kwargs))
            try:
                return self.environment.concat(self.root_render_func(ctx))
            except TemplateError:
                self.environment.handle_exception()
            except Exception as exc:  # whatever a template does, callers get a TemplateError
                raise as_template_error(exc) from None
        raise AssertionError("handle_exception() always raises")


class BudgetedSandbox(SandboxedEnvironment):
    """A sandbox whose templates render under a :class:`Budget` (mix in first)."""

    intercepted_binops = frozenset(["*", "**", "%", "+"])
    template_class = BudgetedTemplate

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        filters = BoundedFilters()
        for name, func in self.filters.items():
            filters[name] = func
        filters.update({"budget.loop": _loop, "budget.literal": _literal, "budget.out": _out,
                        "budget.concat": _concat, "budget.built": _built})
        self.filters = filters
        self.globals["range"] = BoundedRange
        self.globals["lipsum"] = _lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Instrument().visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        current().tick()
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Refuse an unsafe attribute at once, naming it and the object it was asked of.

        Jinja's sandbox returns an undefined value instead, so in a chain such as
        ``value.__class__.__init__`` the refusal surfaced at a later step, as an
        attribute of ``StrictUndefined`` — the same error a misspelt name gives."""
        raise SecurityError(f"access to attribute {attribute!r} of "
                            f"{type(obj).__name__!r} object is unsafe.")

    def getitem(self, obj: Any, argument: Any) -> Any:
        current().tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        owner = current()
        owner.tick()
        check_binop(operator, left, right)
        return owner.made(f"the {operator} operator",
                          super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        owner = current()
        owner.tick()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_counted(args[0]), *args[1:])
        args = _check_method(owner, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        name = getattr(__obj, "__name__", "")
        holder = getattr(__obj, "__self__", None)
        if isinstance(holder, _CONTAINERS) and modifies_known_mutable(holder, name):
            owner.made(f"{type(holder).__name__}.{name}()", holder)
        return owner.made(f"{name or 'the call'}()", result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        holder: str = value.__self__
        formatter: SandboxedFormatter = (
            _EscapeFormatter(self, escape=holder.escape) if isinstance(holder, Markup)
            else _Formatter(self))
        is_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return type(holder)(formatter.vformat(holder, args, kwargs))

        return functools.update_wrapper(bounded_format, value)


__all__ = ["Budget", "BudgetExceeded", "BudgetedSandbox", "TemplateLimits", "budget",
           "check_binop", "configure", "current", "limits", "text_size"]
