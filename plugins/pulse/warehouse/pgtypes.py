"""What PostgreSQL accepts: the one place where a value bound for the warehouse is checked.

Every value a parser takes from a source and every value a record (``pulse.records``) holds goes through the
functions here, before anything is written. A value that PostgreSQL would refuse, or that would be stored as
something other than what the source sent, raises :class:`ItemError` with a quarantine :class:`Reason`.
Nothing is cleaned, rounded, truncated or replaced on the way in: *never change a value silently*.

==============  ==========================================================================================
column type     rule
==============  ==========================================================================================
text            a ``str``; no NUL (``text_nul_byte``: PostgreSQL text cannot hold U+0000); no UTF-16
                surrogate code point (``bad_field``: UTF-8 cannot encode one, it is not a character); at most
                :data:`PG_MAX_TEXT_BYTES` of UTF-8 (``text_too_large``); a source's text field (the parsers)
                at most :data:`MAX_TEXT_BYTES`, a policy
key text        text as above, not empty (``missing_id``), at most :data:`MAX_KEY_BYTES` (``bad_field``: a
                B-tree entry holds about 2,700 bytes)
int2/int4/int8  an ``int``, or a float with an integral value (12.0 is 12); a fraction is ``bad_field`` (an
                integer column would round it); NaN is ``bad_field``; outside the type's range or infinite is
                ``number_out_of_range``; ``bool`` is not a number
numeric/float8  a finite number (NaN ``bad_field``, infinities ``number_out_of_range``), numeric text where a
                source sends numbers as text; as a Python float, which must hold the value exactly: an integer
                beyond 2**53 or text with more digits than a double keeps is ``number_out_of_range``
timestamptz     an aware ``datetime``, normalised to UTC (a naive one is ``bad_timestamp``: its zone is
                unknown). PostgreSQL accepts 4713 BC to 294276 AD, Python 1 to 9999 AD: every aware datetime
                that can be expressed in UTC fits; one whose UTC value would leave year 1..9999 is
                ``bad_timestamp``
event time      a timestamptz that partitions or keys a table: between :data:`MIN_EVENT_TIME` and
                :data:`MAX_EVENT_TIME` (``bad_timestamp``; anything else is a unit error or garbage and would
                create absurd partitions)
jsonb           JSON text: no NUL in any string or key (``text_nul_byte``: jsonb refuses ``\\u0000``), no
                surrogate (``bad_field``), finite numbers (JSON has no NaN or infinity), integers of at most
                :data:`MAX_JSON_INT_DIGITS` digits, nested less deeply than Python can serialise
                (``bad_field``), at most :data:`MAX_JSON_BYTES` (``text_too_large``)
==============  ==========================================================================================

Quarantine rows must be writable whatever the item holds: :func:`storable_text`, :func:`storable_key` and
:func:`storable_json` *escape* what PostgreSQL cannot hold (NUL becomes the six characters ``\\u0000``, a
surrogate ``\\ud800``, NaN the string ``"NaN"``) instead of dropping the evidence.

This module imports nothing from the rest of the package: the record model (``pulse.records``) stands on it,
and the parsers (``pulse.sources``) use it for what only they judge.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import orjson

#: What a source's text field may hold (the parsers' policy, ``text_too_large``; a replay after raising it loads
#: what it held back). Far below what PostgreSQL accepts, :data:`PG_MAX_TEXT_BYTES`.
MAX_TEXT_BYTES = 100_000
#: The most a text value may hold at all: PostgreSQL refuses a field over 1 GB (the records' limit).
PG_MAX_TEXT_BYTES = (1 << 30) - 1024
#: A B-tree entry is limited to about 2,700 bytes; keys longer than this cannot be indexed.
MAX_KEY_BYTES = 1_000
#: jsonb values (metrics, payload) hold at most this much JSON text.
MAX_JSON_BYTES = 1_000_000
#: Python refuses to print integers with more digits than this (``sys.int_info``); jsonb numbers are text.
MAX_JSON_INT_DIGITS = 4_000
#: Reason details and quarantine strings are cut to this many characters.
MAX_DETAIL_CHARS = 500
MAX_QUARANTINE_STRING = 2_000
#: Quarantined items are kept this deep; deeper parts are replaced by a marker (the original is in raw).
MAX_QUARANTINE_DEPTH = 64

INT2 = (-(2**15), 2**15 - 1)
INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)
_INT_RANGES = {"int2": INT2, "int4": INT4, "int8": INT8}
#: Integers a double holds exactly.
MAX_EXACT_FLOAT_INT = 2**53

#: Event times (partition keys, key times) outside this range are refused as ``bad_timestamp``.
MIN_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MIN_EPOCH = MIN_EVENT_TIME.timestamp()
_MAX_EPOCH = MAX_EVENT_TIME.timestamp()


class Reason(StrEnum):
    """Quarantine reason codes (``quality.quarantine.reason_code``)."""

    NOT_AN_OBJECT = "not_an_object"
    MISSING_ID = "missing_id"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    TEXT_NUL_BYTE = "text_nul_byte"
    TEXT_TOO_LARGE = "text_too_large"
    MISSING_TEXT = "missing_text"
    BAD_FIELD = "bad_field"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    #: The item belongs to a month that retention archived and dropped; restore the month to load it.
    ARCHIVED_PERIOD = "archived_period"


class ItemError(ValueError):
    """An item (or one of its values) that cannot be loaded; carries its quarantine reason.

    Raised by the parsers (``pulse.sources``) and by the records they build (``pulse.records``, as
    ``RecordRefused``).
    ``detail`` is always short and storable text.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        detail = storable_text(detail)
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[:MAX_DETAIL_CHARS] + f"... [{len(detail)} chars]"
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def show(value: Any, limit: int = 80) -> str:
    """``repr`` of ``value`` for a reason detail, cut to ``limit`` characters (never raises)."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return repr(value[:limit]) + f"... [{len(value)} chars]"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, dict | list | tuple):
        return f"<{type(value).__name__} of {len(value)}>"
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ cannot reach here from JSON, but never fail on a detail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------


def surrogate_at(value: str) -> int | None:
    """Index of the first UTF-16 surrogate code point in ``value`` (UTF-8 cannot encode one), else None."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def text(name: str, value: Any, *, required: bool = False, max_bytes: int = MAX_TEXT_BYTES) -> str | None:
    """A text value as PostgreSQL stores it (see the module doc); ``""`` stays ``""`` unless ``required``."""
    if value is None or value == "":
        if required:
            raise ItemError(Reason.MISSING_TEXT, f"{name} is missing or empty")
        return None if value is None else ""
    if not isinstance(value, str):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {type(value).__name__}, expected text")
    if "\x00" in value:
        raise ItemError(
            Reason.TEXT_NUL_BYTE, f"{name} contains a NUL byte at character {value.index(chr(0))}"
        )
    if len(value) * 4 > max_bytes:  # cheap bound first: UTF-8 takes at most 4 bytes a character
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise ItemError(Reason.TEXT_TOO_LARGE, f"{name} is {size} bytes (limit {max_bytes})")
    at = surrogate_at(value)
    if at is not None:
        raise ItemError(
            Reason.BAD_FIELD,
            f"{name} holds a lone UTF-16 surrogate U+{ord(value[at]):04X} at character {at}, "
            "which is not a character and cannot be stored as UTF-8",
        )
    return value


def key(name: str, value: Any) -> str:
    """A key text (ids, key columns): text, not empty, short enough for an index."""
    if value is None or value == "":
        raise ItemError(Reason.MISSING_ID, f"{name} is missing or empty")
    checked = text(name, value)
    assert checked is not None
    if len(checked) > MAX_KEY_BYTES // 4 and len(checked.encode("utf-8")) > MAX_KEY_BYTES:
        raise ItemError(Reason.BAD_FIELD, f"{name} is longer than {MAX_KEY_BYTES} bytes")
    return checked


# ------------------------------------------------------------------------------------------------
# numbers
# ------------------------------------------------------------------------------------------------


def integer(name: str, value: Any, *, kind: str = "int4") -> int | None:
    """An integer for an ``int2``/``int4``/``int8`` column (see the module doc)."""
    if value is None:
        return None
    low, high = _INT_RANGES[kind]
    if type(value) is int:
        number = value
    elif isinstance(value, bool):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected a number")
    elif isinstance(value, int):
        number = int(value)
    elif isinstance(value, float | Decimal):
        if value != value:
            raise ItemError(Reason.BAD_FIELD, f"{name} is NaN, expected a number")
        if not math.isfinite(value):
            raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} is {value}")
        if value != int(value):
            raise ItemError(
                Reason.BAD_FIELD,
                f"{name} is {show(value)}, not a whole number (an integer column would change it)",
            )
        number = int(value)
    else:
        raise ItemError(Reason.BAD_FIELD, f"{name} is {show(value)}, expected a number")
    if not low <= number <= high:
        raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} {show(number)} does not fit {kind}")
    return number


def number(name: str, value: Any, *, required: bool = False, allow_text: bool = True) -> float | None:
    """A finite number for a ``numeric`` or ``double precision`` column, as a float that holds it exactly.

    Numeric text ("123.45", as Alpha Vantage sends) is accepted when ``allow_text``.
    """
    if value is None or value == "":
        if required:
            raise ItemError(Reason.BAD_FIELD, f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected a number")
    if isinstance(value, float):
        result = value
    elif isinstance(value, int):
        try:
            result = float(value)
        except OverflowError:
            raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} {show(value)} is out of range") from None
        if abs(value) > MAX_EXACT_FLOAT_INT and int(result) != value:
            raise ItemError(
                Reason.NUMBER_OUT_OF_RANGE, f"{name} {show(value)} cannot be stored exactly as a double"
            )
    elif isinstance(value, str | Decimal) and (allow_text or isinstance(value, Decimal)):
        result = _number_text(name, value)
    else:
        raise ItemError(Reason.BAD_FIELD, f"{name} is {show(value)}, expected a number")
    if result != result:
        raise ItemError(Reason.BAD_FIELD, f"{name} is NaN, not a number")
    if not math.isfinite(result):
        raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} is {show(value)}, not a finite number")
    return result


def _number_text(name: str, value: str | Decimal) -> float:
    if isinstance(value, str):
        if len(value) > 100 or "_" in value:
            raise ItemError(Reason.BAD_FIELD, f"{name} is {show(value)}, expected a number")
        try:
            exact = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            raise ItemError(Reason.BAD_FIELD, f"{name} is {show(value)}, expected a number") from None
    else:
        exact = value
    if exact.is_nan():
        raise ItemError(Reason.BAD_FIELD, f"{name} is {show(value)}, not a number")
    if exact.is_infinite():
        raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} is {show(value)}, not a finite number")
    result = float(exact)
    if not math.isfinite(result) or Decimal(repr(result)) != exact:
        raise ItemError(
            Reason.NUMBER_OUT_OF_RANGE,
            f"{name} {show(value)} cannot be stored exactly (a double keeps about 17 significant digits)",
        )
    return result


# ------------------------------------------------------------------------------------------------
# times
# ------------------------------------------------------------------------------------------------


def timestamp(name: str, value: Any, *, required: bool = False) -> datetime | None:
    """An aware datetime in UTC for a ``timestamptz`` column (see the module doc)."""
    if value is None:
        if required:
            raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is missing")
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is {show(value)}, expected an aware datetime")
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ItemError(
            Reason.BAD_TIMESTAMP, f"{name} {show(value)} is outside years 1-9999 in UTC"
        ) from None


def event_time(name: str, value: Any) -> datetime:
    """A timestamptz that partitions or keys a table: required, within 1970-2100."""
    ts = timestamp(name, value, required=True)
    assert ts is not None
    if not MIN_EVENT_TIME <= ts < MAX_EVENT_TIME:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {ts.isoformat()} is outside 1970-2100")
    return ts


def epoch(name: str, value: Any) -> datetime:
    """Epoch seconds (a JSON number) as an aware UTC datetime within 1970-2100."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is {show(value)}, expected epoch seconds")
    if not (isinstance(value, int) or math.isfinite(value)) or not _MIN_EPOCH <= value < _MAX_EPOCH:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {show(value)} is not epoch seconds within 1970-2100")
    return datetime.fromtimestamp(value, tz=UTC)


def iso_time(name: str, value: Any, *, required: bool = True) -> datetime | None:
    """An ISO 8601 timestamp string (``Z`` or an offset; naive means UTC) as an aware UTC datetime."""
    if value is None or value == "":
        if required:
            raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is {show(value)}, expected an ISO 8601 string")
    if len(value) > 64:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {show(value)} is not ISO 8601")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {show(value)} is not ISO 8601") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return timestamp(name, ts, required=True)


def sane_epoch(value: Any) -> float | None:
    """``value`` as epoch seconds when it is a usable event time (a finite number within 1970-2100), else None.

    For paging decisions (how far back a listing reached): a hostile item's time is skipped, never trusted
    and never allowed to raise.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not _MIN_EPOCH <= value < _MAX_EPOCH:
        return None
    return float(value)


def sane_iso_epoch(value: Any) -> float | None:
    """An ISO 8601 string as epoch seconds when it is a usable event time, else None (never raises)."""
    try:
        ts = iso_time("time", value, required=True)
    except ItemError:
        return None
    assert ts is not None
    return sane_epoch(ts.timestamp())


# ------------------------------------------------------------------------------------------------
# jsonb
# ------------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def json_text(name: str, value: Any) -> str:
    """JSON text for a jsonb column (see the module doc); raises :class:`ItemError` instead of changing a
    value (orjson would write NaN as null, the standard library a lone surrogate as is)."""
    try:
        data = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        pass  # surrogates, integers beyond 64 bits, deep nesting: the careful path tells which
    else:
        # orjson writes NaN and infinities as null; a NUL shows as \u0000. Either needs the careful look.
        if b"null" not in data and b"\\u0000" not in data and len(data) <= MAX_JSON_BYTES:
            return data.decode()
    _check_json(name, value, 0)
    try:
        out = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_json_default)
    except RecursionError:
        raise ItemError(Reason.BAD_FIELD, f"{name} is nested too deeply") from None
    except (ValueError, TypeError) as exc:  # what _check_json did not foresee (a key of another type)
        raise ItemError(Reason.BAD_FIELD, f"{name}: {exc}") from None
    size = len(out.encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise ItemError(Reason.TEXT_TOO_LARGE, f"{name} is {size} bytes of JSON (limit {MAX_JSON_BYTES})")
    return out


def _check_json(name: str, value: Any, depth: int) -> None:
    """Walk a JSON-like value; raise for what jsonb cannot hold as it is."""
    if depth > 500:
        raise ItemError(Reason.BAD_FIELD, f"{name} is nested more than 500 levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ItemError(Reason.TEXT_NUL_BYTE, f"{name} holds a NUL character (jsonb refuses \\u0000)")
        at = surrogate_at(value)
        if at is not None:
            raise ItemError(Reason.BAD_FIELD, f"{name} holds a lone UTF-16 surrogate U+{ord(value[at]):04X}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if value.bit_length() > MAX_JSON_INT_DIGITS * 3:  # ~ digits * log2(10) > 3.3
            raise ItemError(
                Reason.NUMBER_OUT_OF_RANGE, f"{name} holds an integer of {value.bit_length()} bits"
            )
    elif isinstance(value, float):
        if value != value:
            raise ItemError(Reason.BAD_FIELD, f"{name} holds NaN (JSON has no NaN)")
        if not math.isfinite(value):
            raise ItemError(Reason.NUMBER_OUT_OF_RANGE, f"{name} holds {value} (JSON has no infinity)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_json(name, k if isinstance(k, str) else str(k), depth + 1)
            _check_json(name, v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_json(name, v, depth + 1)


# ------------------------------------------------------------------------------------------------
# one dispatch for typed columns
# ------------------------------------------------------------------------------------------------

#: Column types the records know (``pulse.records.COLUMN_TYPES``) and how each is checked.
COLUMN_KINDS = (
    "key",
    "text",
    "int2",
    "int4",
    "int8",
    "numeric",
    "float8",
    "timestamptz",
    "event_time",
    "jsonb",
)


def column_value(kind: str, name: str, value: Any) -> Any:
    """Check ``value`` for a column of ``kind`` (one of :data:`COLUMN_KINDS`); return what is written."""
    if kind == "text":
        return text(name, value, max_bytes=PG_MAX_TEXT_BYTES)
    if kind == "key":
        return key(name, value)
    if kind in _INT_RANGES:
        return integer(name, value, kind=kind)
    if kind in ("numeric", "float8"):
        return number(name, value, allow_text=False)
    if kind == "timestamptz":
        return timestamp(name, value)
    if kind == "event_time":
        return event_time(name, value)
    if kind == "jsonb":
        return json_text(name, value)
    raise ValueError(f"unknown column kind {kind!r}")


# ------------------------------------------------------------------------------------------------
# storable: escape, never refuse (quarantine rows, reason details)
# ------------------------------------------------------------------------------------------------


def storable_text(value: str) -> str:
    """``value`` with what PostgreSQL text cannot hold escaped: NUL as ``\\u0000``, a surrogate as ``\\udXXX``."""
    if value.isascii():
        return value.replace("\x00", "\\u0000") if "\x00" in value else value
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def storable_key(value: str) -> str:
    """A quarantine ``item_key``: escaped (see :func:`storable_text`); a key too long for the index becomes
    ``sha256:<hash of the escaped key>``."""
    escaped = storable_text(value)
    data = escaped.encode("utf-8")
    if len(data) > MAX_KEY_BYTES:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return escaped


def storable_value(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like value that jsonb accepts, with nothing dropped silently: strings escaped and cut
    to :data:`MAX_QUARANTINE_STRING` characters (with a note of the length), NaN and infinities as strings,
    huge integers as a note of their size, parts deeper than :data:`MAX_QUARANTINE_DEPTH` as a note."""
    if isinstance(value, str):
        value = storable_text(value)
        if len(value) > MAX_QUARANTINE_STRING:
            return value[:MAX_QUARANTINE_STRING] + f"... [{len(value)} chars]"
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_JSON_INT_DIGITS * 3:
            return f"[integer of {value.bit_length()} bits]"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_QUARANTINE_DEPTH:
            return f"[{type(value).__name__} nested deeper than {MAX_QUARANTINE_DEPTH} levels; see raw]"
        if isinstance(value, dict):
            return {
                storable_value(k if isinstance(k, str) else str(k), depth + 1): storable_value(v, depth + 1)
                for k, v in value.items()
            }
        return [storable_value(v, depth + 1) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return storable_value(str(value), depth)


def storable_json(value: Any) -> str:
    """JSON text of :func:`storable_value` (for ``quality.quarantine.item``)."""
    return json.dumps(storable_value(value), ensure_ascii=False, allow_nan=False)
