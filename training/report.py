"""The training report: one self-contained HTML page (plots inlined as PNG) plus metrics.json."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from feature_repo.atomic_io import write_json, write_text

if TYPE_CHECKING:
    from training.train import TrainedModel

# metrics.json keys, in the order a reader wants them
METRICS_JSON_KEYS = (
    "train_window",
    "validation_window",
    "training_set",
    "feature_service",
    "model_inputs",
    "params",
    "cv",
    "threshold",
    "metrics",
    "confusion_matrix",
    "baselines",
    "slices",
)
HEADLINE = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier")


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _carrier_history_scores(trained: TrainedModel) -> np.ndarray:
    train, valid, label = trained.split.train, trained.split.valid, trained.label
    base_rate = float(train[label].mean())
    shares = train.groupby("carrier")[label].mean()
    return valid["carrier"].map(shares).fillna(base_rate).to_numpy(dtype=float)


def plots(trained: TrainedModel, evaluation: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: ROC, precision-recall, calibration, confusion matrix, slice ROC-AUC."""
    y = trained.split.valid[trained.label].to_numpy()
    p = trained.valid_proba
    carrier = _carrier_history_scores(trained)
    out: dict[str, str] = {}

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for scores, name in ((p, "model"), (carrier, "carrier history")):
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (validation)")
    ax.legend(loc="lower right")
    out["roc"] = _png(fig)

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for scores, name in ((p, "model"), (carrier, "carrier history")):
        precision, recall, _ = precision_recall_curve(y, scores)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(y.mean()), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (validation)")
    ax.legend(loc="upper right")
    out["pr"] = _png(fig)

    curve = evaluation["calibration"]
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(curve["mean_predicted"], curve["fraction_positive"], marker="o", label="model")
    ax.set(xlabel="mean predicted probability", ylabel="observed late share")
    ax.set_title("Calibration (validation)")
    ax.legend(loc="upper left")
    out["calibration"] = _png(fig)

    cm = evaluation["confusion_matrix"]
    matrix = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    fig = Figure(figsize=(4.2, 3.8))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, f"{count:,}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["on time", "late"])
    ax.set_yticks([0, 1], ["on time", "late"])
    ax.set(xlabel="predicted", ylabel="actual")
    ax.set_title(f"Confusion matrix at {trained.threshold:.3f}")
    out["confusion"] = _png(fig)

    carriers = evaluation["slices"].get("carrier", {})
    names = [k for k, v in carriers.items() if "roc_auc" in v]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.bar(names, [carriers[k]["roc_auc"] for k in names])
    ax.axhline(evaluation["metrics"].get("roc_auc", 0.5), color="black", label="overall")
    ax.set(ylabel="ROC-AUC", title="ROC-AUC per carrier (validation)", ylim=(0.4, 1.0))
    ax.legend(loc="lower right")
    out["slices"] = _png(fig)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    tag: str, metadata: dict[str, Any], evaluation: dict[str, Any], images: dict
) -> str:
    metrics = evaluation["metrics"]
    baselines = evaluation["baselines"]
    comparison = [
        ["model", *(metrics.get(k, "") for k in ("roc_auc", "pr_auc", "log_loss", "brier"))],
        *(
            [name, *(values.get(k, "") for k in ("roc_auc", "pr_auc", "log_loss", "brier"))]
            for name, values in baselines.items()
        ),
    ]
    slice_rows = [
        [f"{kind}={key}", *(m.get(k, "") for k in ("rows", "positive_rate", "roc_auc", "f1"))]
        for kind, groups in evaluation["slices"].items()
        for key, m in groups.items()
    ]
    training_set = metadata["training_set"]
    lineage_rows = [
        ["model", tag],
        ["feature service", metadata["feature_service"]],
        [
            "train window",
            f"{metadata['train_window']['start']} .. {metadata['train_window']['end']}",
        ],
        [
            "validation window",
            f"{metadata['validation_window']['start']} .. {metadata['validation_window']['end']}",
        ],
        ["training set fingerprint", training_set.get("fingerprint", "")],
        ["raw watermark", training_set.get("raw_watermark", "")],
        ["git commit", metadata["git_commit"]],
        ["hyperparameters", json.dumps(metadata["params"], sort_keys=True)],
        ["threshold", metadata["threshold"]],
    ]
    figure = '<img alt="{0}" src="data:image/png;base64,{1}">'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Training report {html.escape(tag)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.plots img {{ margin: 0.5em; border: 1px solid #eee; }}
</style></head><body>
<h1>Training report: {html.escape(tag)}</h1>
<h2>Validation metrics</h2>
{_table(["metric", "value"], [[k, metrics[k]] for k in HEADLINE if k in metrics])}
<h2>Against trivial baselines</h2>
{_table(["scorer", "ROC-AUC", "PR-AUC", "log loss", "Brier"], comparison)}
<div class="plots">
{"".join(figure.format(name, data) for name, data in images.items())}
</div>
<h2>Slices</h2>
{_table(["slice", "rows", "late share", "ROC-AUC", "F1"], slice_rows)}
<h2>Lineage</h2>
{_table(["", ""], lineage_rows)}
</body></html>
"""


def metrics_document(
    tag: str, metadata: dict[str, Any], evaluation: dict[str, Any]
) -> dict[str, Any]:
    document: dict[str, Any] = {"tag": tag}
    document.update({key: metadata[key] for key in METRICS_JSON_KEYS if key in metadata})
    document["slices"] = evaluation["slices"]  # in full; the registry keeps a summary
    document["calibration"] = evaluation["calibration"]
    return document


def write_report(
    out_dir: Path, tag: str, trained: TrainedModel, metadata: dict[str, Any]
) -> tuple[Path, Path]:
    evaluation = trained.evaluation
    html_path, metrics_path = out_dir / "report.html", out_dir / "metrics.json"
    write_json(metrics_document(tag, metadata, evaluation), metrics_path)
    write_text(render_html(tag, metadata, evaluation, plots(trained, evaluation)), html_path)
    return html_path, metrics_path
