"""The one parameter encoder (model files and checkpoint specs)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from aioforest.persistence import FormatError, decode_params, decode_value, encode_params


def test_values_decode_equal_and_compare_after_a_json_round_trip() -> None:
    params = {
        "int": np.int64(3), "float": np.float32(0.5), "bool": np.bool_(True), "none": None,
        "tuple": (1, 2.5, "a"), "array": np.arange(3), "nan": float("nan"),
        "inf": -float("inf"), "by_label": {0: 1.0, 1: np.float64(2.0)}, "huge": 2**70,
        "text": "sqrt",
    }
    encoded = encode_params(params)
    assert orjson.loads(orjson.dumps(encoded)) == encoded  # a stored spec compares equal
    back = decode_params(orjson.loads(orjson.dumps(encoded)))
    assert back.pop("nan") != back.get("nan", 0.0)  # NaN survives as NaN
    assert back == {
        "int": 3, "float": 0.5, "bool": True, "none": None, "tuple": [1, 2.5, "a"],
        "array": [0, 1, 2], "inf": -float("inf"), "by_label": {0: 1.0, 1: 2.0},
        "huge": 2**70, "text": "sqrt",
    }
    assert type(back["bool"]) is bool and type(back["int"]) is int


def test_an_unencodable_value_names_its_parameter_and_place() -> None:
    with pytest.raises(TypeError, match=r"parameter 'weights'\[2\]: <object .* of type object"):
        encode_params({"weights": [1, 2, object()]})


@pytest.mark.parametrize("bad", [{"set": [1]}, {"list": [1], "dict": []}, [1, 2],
                                 {"int": "x"}])
def test_damaged_encodings_are_format_errors(bad: object) -> None:
    with pytest.raises(FormatError):
        decode_value(bad)
