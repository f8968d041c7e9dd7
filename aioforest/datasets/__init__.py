"""Small bundled datasets (from GoLearn's examples, MIT licensed: see ``LICENSE-golearn.md``).

============================  ======  ==========================================  ===========
file                          rows    features                                    target
============================  ======  ==========================================  ===========
``iris_headers.csv``          150     4 numeric                                   ``Species``
``iris.arff``                 150     4 numeric                                   ``class``
``tennis.csv``                14      4 categorical                               ``play``
``weather.arff``              14      2 numeric, 2 nominal                        ``play``
``c45-numeric.csv``           14      1 numeric, 2 categorical                    ``Class``
``house-votes-84.csv``        435     16 numeric (votes as -1/1)                  ``party``
============================  ======  ==========================================  ===========
"""

from __future__ import annotations

from pathlib import Path

from aioforest.data import Dataset, read_arff, read_csv

__all__ = [
    "load_c45_numeric",
    "load_house_votes",
    "load_iris",
    "load_iris_arff",
    "load_tennis",
    "load_weather",
    "names",
    "path",
]

_HERE = Path(__file__).resolve().parent
_SUFFIXES = (".csv", ".arff")


def names() -> list[str]:
    """The bundled data files, sorted."""
    return sorted(p.name for p in _HERE.iterdir() if p.suffix in _SUFFIXES)


def path(name: str) -> Path:
    """The path of the bundled file ``name`` (e.g. ``"tennis.csv"``)."""
    candidate = _HERE / name
    if Path(name).name != name or candidate.suffix not in _SUFFIXES or not candidate.is_file():
        raise FileNotFoundError(f"no bundled dataset {name!r}; available: "
                                f"{', '.join(names())}")
    return candidate


def load_iris() -> Dataset:
    """Fisher's iris: 150 rows, 4 numeric features, 3 balanced classes (``Species``)."""
    return read_csv(path("iris_headers.csv"))


def load_iris_arff() -> Dataset:
    """The same iris data read from ``iris.arff`` (target ``class``)."""
    return read_arff(path("iris.arff"))


def load_tennis() -> Dataset:
    """Mitchell's play-tennis table: 14 rows, 4 categorical features, target ``play``."""
    return read_csv(path("tennis.csv"))


def load_weather() -> Dataset:
    """Weka's weather data (``weather.arff``): mixed numeric and nominal features."""
    return read_arff(path("weather.arff"))


def load_c45_numeric() -> Dataset:
    """The C4.5 numeric-split example: 14 rows, 3 features, target ``Class``."""
    return read_csv(path("c45-numeric.csv"))


def load_house_votes() -> Dataset:
    """1984 US House votes: 435 rows, 16 votes coded -1/1, target ``party`` (267/168)."""
    return read_csv(path("house-votes-84.csv"))
