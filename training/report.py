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


def card_plots(card: dict[str, Any]) -> dict[str, str]:
    """One calibration plot per slice family: each slice's mean predicted probability
    against its observed late share, sized by rows; unchecked (small) slices hollow."""
    out: dict[str, str] = {}
    for family, groups in card.get("slices", {}).items():
        fig = Figure(figsize=(5, 4.5))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        largest = max((g["rows"] for g in groups.values()), default=1)
        styles: tuple[tuple[bool, dict[str, Any]], ...] = (
            (True, {}),
            (False, {"facecolors": "none"}),
        )
        for checked, style in styles:
            keys = [k for k, g in groups.items() if bool(g.get("checked")) == checked]
            if not keys:
                continue
            ax.scatter(
                [groups[k]["mean_predicted"] for k in keys],
                [groups[k]["late_share"] for k in keys],
                s=[20 + 280 * groups[k]["rows"] / largest for k in keys],
                edgecolors="C0",
                label="checked slice" if checked else "too few rows",
                **style,
            )
            for k in keys:
                ax.annotate(
                    k,
                    (groups[k]["mean_predicted"], groups[k]["late_share"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        high = max([0.1] + [max(g["mean_predicted"], g["late_share"]) for g in groups.values()])
        limit = min(1.0, high * 1.15)
        ax.set(xlim=(0, limit), ylim=(0, limit))
        ax.set(xlabel="mean predicted probability", ylabel="observed late share")
        ax.set_title(f"Calibration per {family.replace('_', ' ')} (validation)")
        ax.legend(loc="upper left", fontsize=8)
        out[f"calibration_{family}"] = _png(fig)
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


CARD_COLUMNS = (
    ("rows", "rows"),
    ("late_share", "observed late share"),
    ("mean_predicted", "mean predicted"),
    ("calibration_gap", "calibration gap"),
    ("fpr", "FPR"),
    ("fnr", "FNR"),
    ("fpr_disparity", "FPR - overall"),
    ("fnr_disparity", "FNR - overall"),
    ("roc_auc", "ROC-AUC"),
)


def render_card(card: dict[str, Any], images: dict[str, str]) -> str:
    """The model card: intended use, data window, limitations, the slice table and plots."""
    if not card:
        return ""
    window = card.get("data_window", {})
    train, valid = window.get("train", {}), window.get("validation", {})
    header = ["slice", *(label for _, label in CARD_COLUMNS), "checked"]
    overall = card.get("overall", {})
    rows = [["overall", *(overall.get(k, "") for k, _ in CARD_COLUMNS), ""]]
    for family, groups in card.get("slices", {}).items():
        for key, stats in groups.items():
            rows.append(
                [
                    f"{family}={key}",
                    *(stats.get(k, "") for k, _ in CARD_COLUMNS),
                    "yes" if stats.get("checked") else "too few rows",
                ]
            )
    limitations = "".join(f"<li>{html.escape(item)}</li>" for item in card.get("limitations", []))
    figure = '<img alt="{0}" src="data:image/png;base64,{1}">'
    per_family = {k: v for k, v in images.items() if k.startswith("calibration_")}
    plots_html = "".join(figure.format(name, data) for name, data in per_family.items())
    return f"""<section id="model-card">
<h2>Model card</h2>
<h3>Intended use</h3>
<p>{html.escape(card.get("intended_use", ""))}</p>
<h3>Data window</h3>
{
        _table(
            ["", ""],
            [
                ["training", f"{train.get('start', '?')} .. {train.get('end', '?')}"],
                ["training rows", train.get("rows", "")],
                ["validation", f"{valid.get('start', '?')} .. {valid.get('end', '?')}"],
                ["validation rows", valid.get("rows", "")],
                ["validation fingerprint", valid.get("fingerprint", "")],
                ["training set as of", window.get("training_set_as_of", "")],
                ["training set fingerprint", window.get("training_set_fingerprint", "")],
            ],
        )
    }
<h3>Known limitations</h3>
<ul>{limitations}</ul>
<h3>Slices (validation, at threshold {_fmt(card.get("threshold", ""))})</h3>
<p>Calibration gap is mean predicted minus observed late share. Slices with fewer than
{_fmt(card.get("min_slice_rows", ""))} rows are shown but not checked by the promotion gate.</p>
<div class="slice-table">{_table(header, rows)}</div>
<div class="plots">{plots_html}</div>
</section>"""


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
        ["training set", training_set.get("path", "")],
        ["training set fingerprint", training_set.get("fingerprint", "")],
        ["training set as of", training_set.get("as_of", training_set.get("raw_watermark", ""))],
        ["git commit", metadata["git_commit"]],
        ["hyperparameters", json.dumps(metadata["params"], sort_keys=True)],
        ["threshold", metadata["threshold"]],
    ]
    figure = '<img alt="{0}" src="data:image/png;base64,{1}">'
    card = metadata.get("model_card", {})
    headline_images = {k: v for k, v in images.items() if not k.startswith("calibration_")}
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
{"".join(figure.format(name, data) for name, data in headline_images.items())}
</div>
<h2>Slices</h2>
{_table(["slice", "rows", "late share", "ROC-AUC", "F1"], slice_rows)}
{render_card(card, images)}
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
    if "model_card" in metadata:
        document["model_card"] = metadata["model_card"]
    return document


def write_report(
    out_dir: Path, tag: str, trained: TrainedModel, metadata: dict[str, Any]
) -> tuple[Path, Path]:
    evaluation = trained.evaluation
    html_path, metrics_path = out_dir / "report.html", out_dir / "metrics.json"
    write_json(metrics_document(tag, metadata, evaluation), metrics_path)
    images = plots(trained, evaluation) | card_plots(metadata.get("model_card", {}))
    write_text(render_html(tag, metadata, evaluation, images), html_path)
    return html_path, metrics_path
