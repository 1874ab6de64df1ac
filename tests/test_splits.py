import hashlib

import pandas as pd
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.curate.splits import SPLITS, assign_splits


def test_split_follows_the_documented_hash() -> None:
    digest = hashlib.sha1(b"modaclip:15970").digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64
    expected = "test" if unit < 0.1 else "val" if unit < 0.2 else "train"

    assert assign_splits(pd.Series([15970]), val_fraction=0.1, test_fraction=0.1)[0] == expected


def test_old_ids_keep_their_split_when_more_are_added() -> None:
    old = pd.Series(range(1000))
    grown = pd.Series(range(5000)).sample(frac=1, random_state=0)

    before = assign_splits(old, 0.1, 0.1)
    after = assign_splits(grown, 0.1, 0.1)

    assert after.loc[old.index].tolist() == before.tolist()


def test_fractions_are_met_within_tolerance() -> None:
    splits = assign_splits(pd.Series(range(20_000)), val_fraction=0.1, test_fraction=0.2)

    shares = splits.value_counts(normalize=True)

    assert set(shares.index) == set(SPLITS)
    assert shares["val"] == pytest.approx(0.1, abs=0.01)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["train"] == pytest.approx(0.7, abs=0.01)


def test_zero_fractions_put_everything_in_train() -> None:
    assert set(assign_splits(pd.Series(range(500)), 0.0, 0.0)) == {"train"}


def test_salt_changes_assignment() -> None:
    ids = pd.Series(range(2000))

    plain = assign_splits(ids, 0.2, 0.2)
    salted = assign_splits(ids, 0.2, 0.2, salt="another")

    assert (plain != salted).mean() > 0.3


def test_int_and_str_ids_agree() -> None:
    as_int = assign_splits(pd.Series(range(2000)), 0.2, 0.2)
    as_str = assign_splits(pd.Series([str(i) for i in range(2000)]), 0.2, 0.2)

    assert as_int.tolist() == as_str.tolist()


def test_result_is_indexed_like_ids() -> None:
    ids = pd.Series([7, 8, 9], index=["a", "b", "c"])

    assert assign_splits(ids, 0.1, 0.1).index.tolist() == ["a", "b", "c"]


def test_empty_ids_give_empty_splits() -> None:
    assert assign_splits(pd.Series([], dtype="int64"), 0.1, 0.1).empty


def test_missing_id_is_rejected() -> None:
    with pytest.raises(ModaclipError, match="missing"):
        assign_splits(pd.Series([1, None, 3]), 0.1, 0.1)


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "named"),
    [
        (-0.1, 0.1, "caption.val_fraction"),
        (1.0, 0.0, "caption.val_fraction"),
        (float("nan"), 0.1, "caption.val_fraction"),
        (0.1, -0.5, "caption.test_fraction"),
        (0.1, 1.5, "caption.test_fraction"),
        (0.5, 0.5, "caption.test_fraction"),
        (0.6, 0.7, "caption.val_fraction"),
    ],
)
def test_bad_fractions_are_rejected(val_fraction: float, test_fraction: float, named: str) -> None:
    with pytest.raises(ModaclipError, match=named):
        assign_splits(pd.Series([1, 2]), val_fraction, test_fraction)
