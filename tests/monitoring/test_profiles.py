"""Profiles: whylogs can read what we write, merges add up, bad files are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.profiles import (
    ProfileError,
    merge,
    profile_files,
    profile_frame,
    read_profile,
    read_profiles,
    write_profile,
)
from tests.monitoring.realdata import WEATHER_COLUMNS


def test_a_written_profile_reads_back_with_whylogs_own_reader(
    weather: pd.DataFrame, tmp_path: Path
) -> None:
    from whylogs.core import DatasetProfileView

    frame = weather[WEATHER_COLUMNS]
    path = write_profile(profile_frame(frame, metadata={"model_tag": "m:1"}), tmp_path / "w.bin")

    view = DatasetProfileView.read(str(path))
    assert sorted(view.get_columns()) == sorted(WEATHER_COLUMNS)
    assert view.get_column("temp").get_metric("counts").n.value == len(frame)
    assert view.get_column("wind_gust").get_metric("counts").null.value == int(
        frame["wind_gust"].isna().sum()
    )

    ours = read_profile(path)
    assert ours.rows == len(frame)
    assert ours.metadata["model_tag"] == "m:1"
    median = ours.quantiles("temp", [0.5])[0]
    assert median == pytest.approx(frame["temp"].median(), abs=1.5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_merged_halves_count_like_the_whole(weather: pd.DataFrame) -> None:
    frame = weather[WEATHER_COLUMNS]
    half = len(frame) // 2
    merged = merge([profile_frame(frame.iloc[:half]), profile_frame(frame.iloc[half:])])
    assert merged.rows == len(frame)
    assert merged.stats("temp").count == len(frame)
    assert merged.stats("wind_gust").nulls == int(frame["wind_gust"].isna().sum())
    assert dict(merged.frequent_items("origin")) == frame["origin"].value_counts().to_dict()


def test_numpy2_unfriendly_dtypes_are_profiled_or_dropped() -> None:
    # whylogs 1.6.4 trips over datetimes and pandas' string dtype under NumPy 2.
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2013-07-01", periods=4, freq="h", tz="UTC"),
            "carrier": pd.array(["UA", "AA", None, "UA"], dtype="string"),
            "seats": pd.array([100, None, 150, 200], dtype="Int64"),
            "late": [True, False, True, False],
            "kind": pd.Categorical(["a", "b", "a", "a"]),
        }
    )
    profile = profile_frame(frame)
    assert set(profile.columns) == {"carrier", "seats", "late", "kind"}
    assert profile.stats("carrier").kind == "categorical"
    assert profile.stats("carrier").nulls == 1
    assert profile.stats("seats").kind == "numeric"
    assert profile.stats("seats").nulls == 1
    assert profile.rows == 4


def test_profile_frame_refuses_missing_columns() -> None:
    with pytest.raises(ValueError, match="nope"):
        profile_frame(pd.DataFrame({"a": [1.0]}), columns=["a", "nope"])


def _refused(path: Path) -> str:
    with pytest.raises(ProfileError) as caught:
        read_profile(path)
    assert caught.value.path == path
    return str(caught.value)


def test_missing_empty_and_corrupt_files_are_named(weather: pd.DataFrame, tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    assert _refused(missing) == f"{missing}: profile file not found"

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert _refused(empty) == f"{empty}: profile file is empty"

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    assert _refused(garbage).startswith(f"{garbage}: not a readable whylogs profile")

    good = write_profile(profile_frame(weather[WEATHER_COLUMNS]), tmp_path / "good.bin")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert _refused(truncated).startswith(f"{truncated}: not a readable whylogs profile")

    with pytest.raises(ProfileError) as caught:
        read_profiles([good, garbage])
    assert caught.value.path == garbage


def test_folders_expand_to_their_profiles_but_not_temp_files(
    weather: pd.DataFrame, tmp_path: Path
) -> None:
    profile = profile_frame(weather[WEATHER_COLUMNS].head(100))
    write_profile(profile, tmp_path / "a.bin")
    write_profile(profile, tmp_path / "b.bin")
    (tmp_path / ".a.bin.x1y2.tmp").write_bytes(b"half a profile")
    assert [p.name for p in profile_files([tmp_path])] == ["a.bin", "b.bin"]
    assert read_profiles([tmp_path]).rows == 200
    folder = tmp_path / "no-profiles"
    folder.mkdir()
    with pytest.raises(ProfileError) as caught:
        profile_files([folder])
    assert str(caught.value) == f"{folder}: folder holds no .bin profiles"
