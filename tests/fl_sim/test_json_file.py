"""fl_sim.json_file: one JSON policy (strict JSON, non-finite floats as strings)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fl_sim.json_file import from_jsonable, read_json, to_jsonable, write_json


@dataclasses.dataclass
class Point:
    x: float
    tag: str


class WithToDict:
    def to_dict(self):
        return {"a": np.float32(1.5), "b": (1, 2)}


def _strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


NESTED = {
    "inf": math.inf, "minus": -math.inf, "nan": math.nan, "plain": 1.25, "int": 3,
    "np": {"f64": np.float64(-math.inf), "f32": np.float32(0.5), "i64": np.int64(7),
           "b": np.bool_(True), "arr": np.array([[1.0, np.nan], [np.inf, 2.0]])},
    "tensor": torch.tensor([1.0, float("-inf"), float("nan")]),
    "tuple": (1, (2.0, math.inf)), "keys": {1: "one", (2, 3): "pair"},
    "none": None, "text": "hello", "point": Point(math.inf, "p"), "obj": WithToDict(),
    "path": Path("a/b.json"),
}


def _same(a, b) -> bool:
    """Equality with nan == nan (floats compared exactly)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_to_jsonable_gives_plain_types_and_strings_for_non_finite():
    out = to_jsonable(NESTED)
    assert out["inf"] == "inf" and out["minus"] == "-inf" and out["nan"] == "nan"
    assert out["np"] == {"f64": "-inf", "f32": 0.5, "i64": 7, "b": True,
                         "arr": [[1.0, "nan"], ["inf", 2.0]]}
    assert out["tensor"] == [1.0, "-inf", "nan"]
    assert out["tuple"] == [1, [2.0, "inf"]]
    assert out["keys"] == {"1": "one", "(2, 3)": "pair"}
    assert out["point"] == {"x": "inf", "tag": "p"} and out["obj"] == {"a": 1.5, "b": [1, 2]}
    assert out["path"] == str(Path("a/b.json"))
    assert type(out["np"]["i64"]) is int and type(out["np"]["b"]) is bool
    _strict_loads(json.dumps(out, allow_nan=False))  # nothing non-standard left


def test_from_jsonable_turns_exactly_the_three_strings_back():
    back = from_jsonable({"a": ["inf", "-inf", "nan", "Infinity", "inf "], "b": {"c": "nan"},
                          "d": 1, "e": None})
    assert back["a"][0] == math.inf and back["a"][1] == -math.inf and math.isnan(back["a"][2])
    assert back["a"][3:] == ["Infinity", "inf "] and math.isnan(back["b"]["c"])
    assert back["d"] == 1 and back["e"] is None


def test_write_read_round_trip_of_nested_values(tmp_path):
    path = write_json(tmp_path / "sub" / "x.json", NESTED)
    assert path == tmp_path / "sub" / "x.json"
    _strict_loads(path.read_text())
    back = read_json(path)
    assert _same(back, from_jsonable(to_jsonable(NESTED)))
    assert back["inf"] == math.inf and back["minus"] == -math.inf and math.isnan(back["nan"])
    assert back["np"]["arr"][0][1] != back["np"]["arr"][0][1]  # nan
    assert back["tensor"][1] == -math.inf and back["tuple"] == [1, [2.0, math.inf]]
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_write_json_refuses_unknown_types_and_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "x.json", {"a": 1})
    with pytest.raises(TypeError, match="obj: cannot write a set"):
        write_json(path, {"a": {1, 2}})
    assert read_json(path) == {"a": 1}
    assert list(tmp_path.iterdir()) == [path]
