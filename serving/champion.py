"""Finding and loading the champion model from the registry (the BentoML model store).

Serving meets training only here, through the registry's contract (see
docs/training.md): models named ``flight_delay``, the label ``stage=champion`` marks the
one to serve, and ``metadata`` says which feature service, input columns and
threshold it was trained with.

Scoring avoids the Pipeline's pandas path: one-row DataFrames and the
ColumnTransformers cost far more than the trees. :class:`FastScorer` folds the
fitted encoders into lookups, builds one NumPy matrix and walks all trees at
once (:class:`_Forest`); a self-check at load proves the probabilities equal
``pipeline.predict_proba``, or the scorer falls back to the classifier.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feature_repo.settings import Settings
from model_registry import MODEL_NAME, open_model_store, pick_champion
from model_registry.integrity import model_problems, one_line, scan_models
from model_registry.sklearn_compat import UnexpectedInternals, boosted_trees, inner_preprocessor

REQUIRED_METADATA = ("feature_service", "model_inputs", "categorical_inputs", "threshold")

log = logging.getLogger(__name__)


class NoChampion(RuntimeError):
    """There is no model to serve."""


class BrokenChampion(NoChampion):
    """The champion's entry is there, but its artifact is missing or unloadable."""


def champion_tag(settings: Settings) -> str:
    """The tag of the model labelled champion (the latest promotion wins a tie).

    Serving workers ask every few seconds. Reading the registry means parsing
    every model's ``model.yaml`` (tens of ms per model, more as models
    accumulate), holding the GIL while requests wait; so the answer is kept
    until a ``model.yaml`` changes. Promotions rewrite it (renamed over, so a
    new inode), saves add one and deletions remove one, so a stat of each
    file tells whether anything could have changed.
    """
    root = settings.bentoml_home / "models" / MODEL_NAME
    stamp = _registry_stamp(root)
    cached = _champion_cache.get(root)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    # One unreadable entry is skipped (with a warning naming it), never fatal.
    scan = scan_models(settings)
    best = pick_champion(scan.models)
    if best is None:
        unreadable = "".join(f"; unreadable entry {b.tag} ({b.reason})" for b in scan.broken)
        raise NoChampion(
            f"no champion model '{MODEL_NAME}' in the registry at {settings.bentoml_home}"
            f"{unreadable}. Train and promote one first: `make run`, or "
            "`python -m training train ... && python -m training models promote <tag>`"
        )
    if stamp is not None:
        _champion_cache[root] = (stamp, str(best.tag))
    return str(best.tag)


_champion_cache: dict[Path, tuple[tuple[tuple[str, int, int, int], ...], str]] = {}


def _registry_stamp(root: Path) -> tuple[tuple[str, int, int, int], ...] | None:
    """(version, inode, mtime, size) of every model.yaml under ``root``; None if unreadable."""
    entries = []
    try:
        with os.scandir(root) as versions:
            for version in versions:
                if version.is_dir():
                    info = os.stat(os.path.join(version.path, "model.yaml"))
                    entries.append((version.name, info.st_ino, info.st_mtime_ns, info.st_size))
    except OSError:
        return None
    return tuple(sorted(entries))


class FastScorer:
    """The Pipeline's late probability from plain columns, without its pandas path.

    What the fitted Pipeline does per call is folded, once, into lookups:

    - its ColumnTransformer: categorical values become the encoder's codes, in
      ``prepare.get_feature_names_out()`` order;
    - the classifier's own preprocessor, which HistGradientBoosting (1.4 and
      later) builds whenever it has categorical features, named on a DataFrame
      or given as a mask on NumPy: a second ordinal encoding of those codes,
      and a column order with the categorical columns first. It costs
      milliseconds per call; composed with the first encoding it costs nothing.

    The trees are then evaluated by :class:`_Forest`. At load, a self-check
    scores synthetic rows that straddle every split of every tree, plus unknown
    and missing categories, both ways; if anything differs from
    ``pipeline.predict_proba`` by more than 1e-12, scoring falls back to the
    classifier's own ``predict_proba`` and a warning says so.
    """

    def __init__(self, pipeline: Any, model_inputs: Sequence[str]) -> None:
        prepare = pipeline.named_steps["prepare"]
        self.pipeline = pipeline
        self.classifier = pipeline.named_steps["classifier"]
        self.order = [str(c) for c in prepare.get_feature_names_out()]
        missing = sorted(set(self.order) - set(model_inputs))
        if missing:
            raise ValueError(f"model expects inputs its metadata does not list: {missing}")
        self.codes: dict[str, dict[Any, float]] = {}
        for name, encoder, columns in prepare.transformers_:
            if name == "categorical":
                for column, categories in zip(columns, encoder.categories_, strict=True):
                    self.codes[column] = {
                        value: float(i) for i, value in enumerate(categories) if _coded(value)
                    }
        # The general path, always valid: our matrix in the Pipeline's order into the
        # classifier, which then runs its own preprocessor if it has one.
        self._columns: list[tuple[str, dict[Any, float] | None]] = [
            (name, self.codes.get(name)) for name in self.order
        ]
        self._forest: _Forest | None = None
        self.fast = False
        try:
            folded = _fold_inner_preprocessor(self.classifier, self.order, self.codes)
            forest = _Forest(self.classifier)
        except _Unsupported as why:
            log.warning("fast scoring unavailable, using predict_proba", extra={"why": str(why)})
            return
        general = self._columns
        self._columns, self._forest = folded, forest
        problem = self._self_check()
        if problem:
            log.warning("fast scoring disagrees with the Pipeline", extra={"why": problem})
            self._columns, self._forest = general, None
        else:
            self.fast = True

    def matrix(self, columns: Mapping[str, Sequence[Any]], rows: int) -> np.ndarray:
        matrix = np.empty((rows, len(self._columns)), dtype=np.float64)
        for j, (name, codes) in enumerate(self._columns):
            values = columns[name]
            if codes is not None:
                matrix[:, j] = [codes.get(v, math.nan) for v in values]
            else:
                matrix[:, j] = [math.nan if v is None else v for v in values]
        return matrix

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if not _single_threaded[0]:
            _limit_openmp_to_one_thread()
        if self._forest is not None:
            return self._forest.predict_proba(matrix)
        with warnings.catch_warnings():
            # Fitted on a DataFrame; the columns are in the fitted order by construction.
            warnings.simplefilter("ignore", UserWarning)
            return self.classifier.predict_proba(matrix)[:, 1]

    def _self_check(self) -> str:
        """'' when fast scoring equals ``pipeline.predict_proba`` on probing rows."""
        import pandas as pd

        columns = _probe_columns(self.classifier, self.order, self.codes, self._forest)
        rows = len(columns[self.order[0]])
        frame = pd.DataFrame({name: columns[name] for name in self.order})
        frame = frame.astype({name: object for name in self.codes})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = self.pipeline.predict_proba(frame)[:, 1]
        worst = 0.0
        # One row and a few take the level-wise walk; all (>= 2 x SMALL) the per-tree loop.
        for start, stop in ((0, 1), (1, 8), (0, rows)):
            part = {name: values[start:stop] for name, values in columns.items()}
            got = self.predict(self.matrix(part, stop - start))
            worst = max(worst, float(np.max(np.abs(got - expected[start:stop]))))
        return "" if worst <= 1e-12 else f"max difference {worst:.3g} on {rows} probing rows"


class _Unsupported(Exception):
    """The model is not the kind the fast path was written and checked for."""


def _fold_inner_preprocessor(
    classifier: Any, order: Sequence[str], codes: Mapping[str, Mapping[Any, float]]
) -> list[tuple[str, dict[Any, float] | None]]:
    """The classifier's input columns, each with the value -> code map that reaches it."""
    inner = inner_preprocessor(classifier)
    if inner is None:  # no categorical features: our matrix is the classifier's input
        return [(name, dict(codes[name]) if name in codes else None) for name in order]
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    folded: list[tuple[str, dict[Any, float] | None]] = []
    for _, transformer, selection in inner.transformers_:
        indices = np.arange(len(order))[selection]
        if isinstance(transformer, OrdinalEncoder):
            for index, categories in zip(indices, transformer.categories_, strict=True):
                name = order[index]
                inner_code = {float(c): float(i) for i, c in enumerate(categories) if _coded(c)}
                outer = codes.get(name, {})
                folded.append(
                    (name, {v: inner_code[c] for v, c in outer.items() if c in inner_code})
                )
        elif isinstance(transformer, FunctionTransformer) or transformer == "passthrough":
            folded.extend((order[index], None) for index in indices)
        elif transformer != "drop":
            raise _Unsupported(f"classifier preprocessor step {type(transformer).__name__}")
    return folded


class _Forest:
    """A binary HistGradientBoostingClassifier's trees, walked all at once.

    scikit-learn walks one tree per Cython call: ~4 µs each, so ~1 ms for 250
    trees however few rows there are. Flattened into arrays, all trees advance
    one level per step with under twenty NumPy operations: ~0.2 ms for one row.
    The decisions are those of ``_predict_one_from_raw_data`` (scikit-learn
    1.5-1.9): missing values follow ``missing_go_to_left``; a categorical split
    sends a code left if it is in the node's bitset, right if it is a known
    category, and treats negative or unknown codes as missing. Categorical
    splits are precomputed into a table (node x code -> left), so they cost a
    lookup instead of bitset arithmetic. Leaves are summed in tree order after
    the baseline and mapped by the classifier's own loss, as scikit-learn does,
    so probabilities are identical. The walk's cost grows with the rows faster
    than the per-tree loop's, so from ``SMALL`` rows on scikit-learn's loop is
    used instead.
    """

    SMALL = 64
    CODES = 257  # uint8 category codes, plus one slot for "missing or out of range"

    def __init__(self, classifier: Any) -> None:
        if getattr(classifier, "n_trees_per_iteration_", None) != 1 or (
            len(getattr(classifier, "classes_", ())) != 2
        ):
            raise _Unsupported("not a binary HistGradientBoostingClassifier")
        try:
            boosted = boosted_trees(classifier)
        except UnexpectedInternals as err:
            raise _Unsupported(str(err)) from None
        trees = boosted.trees
        self.known_bitsets, self.feature_slot = boosted.known_bitsets, boosted.feature_slot
        self.baseline, self.loss = boosted.baseline, boosted.loss
        if not trees:
            raise _Unsupported("no trees")
        self.trees = trees
        width = max(len(t.nodes) for t in trees)
        size = len(trees) * width
        self.roots = np.arange(len(trees), dtype=np.intp) * width
        self.feature = np.zeros(size, dtype=np.intp)
        self.threshold = np.zeros(size, dtype=np.float64)
        self.missing_left = np.zeros(size, dtype=bool)
        self.categorical = np.zeros(size, dtype=bool)
        self.internal = np.zeros(size, dtype=bool)  # a split, not a leaf nor padding
        self.value = np.zeros(size, dtype=np.float64)
        # child[2 * node + went_left]; a leaf points at itself, so it stays put while
        # deeper trees finish their walk.
        self.child = np.zeros(2 * size, dtype=np.intp)
        # Row of a categorical node in the decision table, times CODES; row 0 is unused.
        self.table_row = np.zeros(size, dtype=np.intp)
        rows: list[np.ndarray] = [np.zeros(self.CODES, dtype=bool)]
        codes = np.arange(256)
        word, bit = codes >> 5, (codes & 31).astype(np.uint32)
        for t, tree in enumerate(trees):
            nodes, base = tree.nodes, t * width
            span = slice(base, base + len(nodes))
            leaf = nodes["is_leaf"].astype(bool)
            itself = np.arange(base, base + len(nodes))
            self.feature[span] = nodes["feature_idx"]
            self.threshold[span] = nodes["num_threshold"]
            self.missing_left[span] = nodes["missing_go_to_left"].astype(bool)
            self.categorical[span] = nodes["is_categorical"].astype(bool) & ~leaf
            self.internal[span] = ~leaf
            self.value[span] = nodes["value"]
            self.child[2 * base : 2 * (base + len(nodes)) : 2] = np.where(
                leaf, itself, base + nodes["right"].astype(np.intp)
            )
            self.child[2 * base + 1 : 2 * (base + len(nodes)) : 2] = np.where(
                leaf, itself, base + nodes["left"].astype(np.intp)
            )
            for i in np.flatnonzero(self.categorical[span]):
                node = nodes[i]
                in_left = (tree.raw_left_cat_bitsets[node["bitset_idx"], word] >> bit) & 1
                slot = self.feature_slot[node["feature_idx"]]
                known = (self.known_bitsets[slot, word] >> bit) & 1
                missing = bool(node["missing_go_to_left"])
                row = np.full(self.CODES, missing)
                row[:256] = np.where(in_left == 1, True, np.where(known == 1, False, missing))
                self.table_row[base + i] = len(rows) * self.CODES
                rows.append(row)
        self.table = np.concatenate(rows)
        self.has_categorical = len(rows) > 1
        # The walk keeps the deepest trees first: at level k only the trees deeper
        # than k still move, a prefix that shrinks as they finish (a third less work).
        depths = np.array([tree.get_max_depth() for tree in trees])
        self.walk_order = np.argsort(-depths, kind="stable")
        self.tree_order = np.argsort(self.walk_order)  # back to tree order, for the sum
        self.moving = [int((depths > level).sum()) for level in range(int(depths.max()))]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        rows = matrix.shape[0]
        raw = self._walk(matrix) if rows < self.SMALL else self._per_tree(matrix)
        return self.loss.predict_proba(raw.reshape(-1, 1))[:, 1]

    def _per_tree(self, matrix: np.ndarray) -> np.ndarray:
        raw = np.full(matrix.shape[0], self.baseline)
        for tree in self.trees:
            raw += tree.predict(matrix, self.known_bitsets, self.feature_slot, 1)
        return raw

    def _walk(self, matrix: np.ndarray) -> np.ndarray:
        rows, width = matrix.shape
        flat = np.ascontiguousarray(matrix, dtype=np.float64).ravel()
        missing = np.isnan(flat)
        any_missing = bool(missing.any())
        if self.has_categorical:
            # Cython casts the float to uint8 after ruling out NaN and negatives.
            out_of_range = missing | (flat < 0) | (flat >= 256)
            code = np.where(out_of_range, 0, flat).astype(np.intp)
            code[out_of_range] = self.CODES - 1
        # Trees (deepest first) x rows, flattened: entry k is tree k // rows, row k % rows.
        node = np.repeat(self.roots[self.walk_order], rows)
        row_start = np.tile(np.arange(rows, dtype=np.intp) * width, len(self.trees))
        for trees in self.moving:
            at_node = node[: trees * rows]
            at = self.feature.take(at_node)
            if rows > 1:
                at += row_start[: trees * rows]
            left = flat.take(at) <= self.threshold.take(at_node)
            if any_missing:
                left |= missing.take(at) & self.missing_left.take(at_node)
            if self.has_categorical:
                by_table = self.table.take(self.table_row.take(at_node) + code.take(at))
                left = np.where(self.categorical.take(at_node), by_table, left)
            node[: trees * rows] = self.child.take(2 * at_node + left)
        leaves = np.empty((len(self.trees) + 1, rows))
        leaves[0] = self.baseline
        leaves[1:] = self.value.take(node).reshape(len(self.trees), rows)[self.tree_order]
        # cumsum adds strictly in order, as scikit-learn's per-tree loop does.
        return np.cumsum(leaves, axis=0)[-1]


def _probe_columns(
    classifier: Any,
    order: Sequence[str],
    codes: Mapping[str, Mapping[Any, float]],
    forest: _Forest | None,
) -> dict[str, list[Any]]:
    """Rows that exercise every split: values at, just below and just above each
    numeric threshold, every known category, an unknown one, and missing values."""
    rng = np.random.default_rng(0)
    candidates: dict[str, list[Any]] = {}
    for j, name in enumerate(order):
        if name in codes:
            candidates[name] = [*codes[name], None, math.nan, "__unseen__"]
            continue
        thresholds: list[float] = []
        if forest is not None:
            inner = _inner_index(classifier, order, j)
            used = (forest.feature == inner) & forest.internal & ~forest.categorical
            thresholds = sorted(set(forest.threshold[used].tolist()))
        values: list[Any] = [None, 0.0]
        for t in thresholds:
            values += [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
        candidates[name] = values
    rows = max(2 * _Forest.SMALL, *(len(v) for v in candidates.values()))
    columns: dict[str, list[Any]] = {}
    for name, values in candidates.items():
        # Every candidate at least once, the rest drawn at random, in a shuffled order.
        picks = list(values) + [values[i] for i in rng.integers(0, len(values), rows - len(values))]
        columns[name] = [picks[i] for i in rng.permutation(rows)]
    return columns


def _inner_index(classifier: Any, order: Sequence[str], j: int) -> int:
    """Where column ``j`` of our order lands in the classifier's own input."""
    inner = getattr(classifier, "_preprocessor", None)
    if inner is None:
        return j
    position = 0
    for _, _, selection in inner.transformers_:
        indices = list(np.arange(len(order))[selection])
        if j in indices:
            return position + indices.index(j)
        position += len(indices)
    return -1


_single_threaded = [False]


def _limit_openmp_to_one_thread() -> None:
    """Scoring a few rows, OpenMP's fork-join per tree costs ~3 ms per tree set on
    this 2-core machine, 100x the work itself. Serving runs one thread per request
    instead, and gets its parallelism from workers and concurrent requests."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
    _single_threaded[0] = True


def _coded(value: Any) -> bool:
    """Whether an OrdinalEncoder category gets a code: NaN is its missing marker, while
    None, when it was seen in training, is an ordinary category (scikit-learn's rule)."""
    return not (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Champion:
    tag: str
    feature_service: str
    model_inputs: list[str]
    categorical_inputs: list[str]
    threshold: float
    pipeline: Any
    scorer: FastScorer


def load_champion(settings: Settings, tag: str | None = None) -> Champion:
    tag = tag or champion_tag(settings)
    store = open_model_store(settings)
    model = store.get(tag)
    metadata: dict[str, Any] = dict(model.info.metadata)
    absent = [key for key in REQUIRED_METADATA if key not in metadata]
    if absent:
        raise NoChampion(f"model {tag} lacks registry metadata {absent}; re-register it")
    problems = [p for p in model_problems(model.path, metadata, settings.data_dir) if "pkl" in p]
    if problems:
        raise BrokenChampion(
            f"champion {tag} cannot be served: {'; '.join(problems)}. Promote or roll back to "
            "another model (`python -m training models list`)"
        )
    import bentoml

    try:
        pipeline = bentoml.sklearn.load_model(model)
    except Exception as err:  # a truncated or foreign pickle: one line, naming the file
        raise BrokenChampion(
            f"champion {tag} cannot be loaded from {model.path}: {one_line(err)}"
        ) from None
    inputs = list(metadata["model_inputs"])
    try:
        scorer = FastScorer(pipeline, inputs)
        probe = float(scorer.predict(scorer.matrix({n: [None] for n in inputs}, 1))[0])
    except Exception as err:  # a model that cannot score must not be reported ready
        raise BrokenChampion(f"champion {tag} cannot score a probe row: {one_line(err)}") from None
    if not 0.0 <= probe <= 1.0:
        raise BrokenChampion(f"champion {tag} scored a probe row as {probe}, not a probability")
    return Champion(
        tag=tag,
        feature_service=str(metadata["feature_service"]),
        model_inputs=inputs,
        categorical_inputs=list(metadata["categorical_inputs"]),
        threshold=float(metadata["threshold"]),
        pipeline=pipeline,
        scorer=scorer,
    )
