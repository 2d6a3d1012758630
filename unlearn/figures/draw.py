"""The figures, drawn with matplotlib from saved results only: the results CSV (metrics per run), the run dirs'
predictions.npz (per-sample classes and losses) and, for the landscape, a cached checkpoint.

Every function takes the figure's jobs joined with their results (`sweep.attach`: one row per run, with the
job's block, row, method, label, seed and grid values) and returns a matplotlib Figure. Where there are seeds,
lines carry a band of ± one standard deviation over seeds and points carry error bars.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn.results import PREDICTIONS_FILE  # noqa: E402

GAP_METRICS = ("UA", "MIA", "RA", "TA")
OURS = {"ugradsl": ("*", "tab:purple"), "ugradsl_plus": ("*", "tab:red")}  # the paper's stars (ICLR Fig. 1)
RETRAIN_STYLE = {"color": "0.3", "linestyle": "--", "linewidth": 1.2}


def _need(df: pd.DataFrame, what: str) -> None:
    if df.empty:
        raise ValueError(f"no finished runs for {what}; run the figure's sweep first (python -m unlearn.figures run ...)")


def _stats(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    """mean, std (0 with one seed) and n over seeds of `cols`, per `by`."""
    g = df.groupby(by, sort=False)[cols]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    out = mean.join(std, rsuffix="_std")
    out["n"] = g.size()
    return out.reset_index()


def _band(ax, x, mean, std, **kw):
    line, = ax.plot(x, mean, marker="o", markersize=3, **kw)
    if np.any(std > 0):
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def _seeds_note(df: pd.DataFrame) -> str:
    n = df.groupby(["config_id"])["seed"].nunique()
    return f"seeds per point: {n.min()}" if n.min() == n.max() else f"seeds per point: {n.min()}-{n.max()}"


def fig1(df: pd.DataFrame, spec) -> plt.Figure:
    """ICLR Fig. 1: MIA on D_f and TA against the run time (RTE), one marker per method; upper left is better."""
    _need(df, "fig1")
    s = _stats(df, ["row", "method", "label"], ["RTE_min", "MIA", "TA"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, metric in zip(axes, ("MIA", "TA")):
        for _, r in s.iterrows():
            marker, color = OURS.get(r["method"], ("o", None))
            if r["method"] == "retrain":
                marker, color = "o", "black"
            ax.errorbar(r["RTE_min"], r[metric], xerr=r["RTE_min_std"], yerr=r[f"{metric}_std"], fmt=marker,
                        color=color, markersize=12 if marker == "*" else 7, capsize=2, label=r["label"])
            ax.annotate(r["label"], (r["RTE_min"], r[metric]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("RTE (min, log scale)")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{metric} vs run time")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{spec.title} ({_seeds_note(df)}, mean ± std)", fontsize=10)
    fig.tight_layout()
    return fig


def _retrain_line(ax, df: pd.DataFrame, metric: str, x: str | None = None) -> None:
    """Retrain as a dashed line: flat (its mean over all runs) or, with `x`, per x value (it changes with x)."""
    key = f"retrain/{metric}"
    if key not in df:
        return
    if x is None:
        ax.axhline(df[key].mean(), label="Retrain", **RETRAIN_STYLE)
    else:
        s = df.groupby(x)[key].agg(["mean", "std"]).fillna(0.0).sort_index()
        ax.plot(s.index, s["mean"], label="Retrain", **RETRAIN_STYLE)


def fig3(df: pd.DataFrame, spec) -> plt.Figure:
    """ICLR Fig. 3: UA, MIA, RA, TA of UGradSL+ against the smooth rate alpha; Retrain dashed."""
    _need(df, "fig3")
    s = _stats(df, ["smooth_rate"], list(GAP_METRICS)).sort_values("smooth_rate")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    for ax, metric in zip(axes, GAP_METRICS):
        _band(ax, s["smooth_rate"].astype(float), s[metric], s[f"{metric}_std"], color="tab:red",
              label=df["label"].iloc[0])
        _retrain_line(ax, df, metric)
        ax.axvline(0, color="0.8", linewidth=0.8)
        ax.set_xlabel("smooth rate α (< 0: NLS)")
        ax.set_title(f"{metric} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{spec.title} ({_seeds_note(df)}, mean ± std)", fontsize=10)
    fig.tight_layout()
    return fig


def _predictions(run_dir: str) -> dict[str, np.ndarray]:
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.exists():
        raise ValueError(f"{path} is absent: the run predates predictions.npz (issue 9); rerun it (the figure's "
                         f"`run` does, after a new commit) or delete its row")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _confusion(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    cols = max(k, int(pred.max()) + 1 if len(pred) else k)  # BE's kept shadow class predicts class K
    m = np.zeros((k, cols))
    np.add.at(m, (true.astype(int), pred.astype(int)), 1)
    return m


def fig4(df: pd.DataFrame, spec) -> plt.Figure:
    """ICLR Fig. 4: confusion matrices of D_f and of the test set for the original model, the unlearned one and
    Retrain, summed over seeds, each row normalised to the share of its true class (%)."""
    _need(df, "fig4")
    models = ("original", "unlearned", "retrain")
    label = df["label"].iloc[0]
    sums: dict[tuple[str, str], np.ndarray] = {}
    for run_dir in df["run_dir"]:
        z = _predictions(run_dir)
        k = int(z["num_classes"])
        for split in ("forget", "test"):
            for model in models:
                m = _confusion(z[f"{split}_true"], z[f"{model}_{split}_pred"], k)
                prev = sums.get((split, model))
                if prev is not None and prev.shape != m.shape:
                    width = max(prev.shape[1], m.shape[1])
                    prev, m = (np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in (prev, m))
                sums[(split, model)] = m if prev is None else prev + m
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.6))
    for i, split in enumerate(("forget", "test")):
        for j, model in enumerate(models):
            m = sums[(split, model)]
            rows = m.sum(1, keepdims=True)
            share = np.divide(100 * m, rows, out=np.zeros_like(m), where=rows > 0)
            ax = axes[i, j]
            im = ax.imshow(share, vmin=0, vmax=100, cmap="Blues")
            acc = 100 * np.trace(m[:, :m.shape[0]]) / max(m.sum(), 1)
            name = label if model == "unlearned" else model.capitalize()
            ax.set_title(f"{'D_f' if split == 'forget' else 'test set'}: {name} (acc {acc:.1f}%)", fontsize=9)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            present = np.flatnonzero(rows[:, 0] > 0)
            if len(present) == 1:  # class-wise D_f: one row
                ax.set_ylim(present[0] + 0.5, present[0] - 0.5)
    fig.colorbar(im, ax=axes, shrink=0.6, label="% of the true class")
    fig.suptitle(f"{spec.title} (seeds pooled: {df['seed'].nunique()})", fontsize=10)
    return fig


def _loss_hist(ax, forget: np.ndarray, test: np.ndarray, title: str) -> None:
    lo = np.log10(np.clip(np.concatenate([forget, test]), 1e-8, None))
    bins = np.linspace(lo.min(), max(lo.max(), lo.min() + 1e-3), 40)
    for values, name, color in ((forget, "D_f", "tab:red"), (test, "test", "tab:blue")):
        ax.hist(np.log10(np.clip(values, 1e-8, None)), bins=bins, density=True, alpha=0.5, color=color, label=name)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("log10 per-sample loss")


def figloss(df: pd.DataFrame, spec) -> plt.Figure:
    """arXiv Fig. 7: per-sample loss distributions of D_f and of the test set, per forgetting paradigm (block) and
    model (original, unlearned, Retrain), seeds pooled; each panel names its additional MIA (mean over seeds)."""
    _need(df, "figloss")
    blocks = list(dict.fromkeys(zip(df["table"], df["block"])))  # table 1's and table 8's blocks share a name
    models = ("original", "unlearned", "retrain")
    fig, axes = plt.subplots(len(blocks), 3, figsize=(12, 3.3 * len(blocks)), squeeze=False)
    for i, (table, block) in enumerate(blocks):
        sel = df[(df["table"] == table) & (df["block"] == block)]
        pooled = {m: ([], []) for m in models}
        for run_dir in sel["run_dir"]:
            z = _predictions(run_dir)
            for m in models:
                pooled[m][0].append(z[f"{m}_forget_loss"])
                pooled[m][1].append(z[f"{m}_test_loss"])
        for j, m in enumerate(models):
            key = "mia/forget_vs_test_acc" if m == "unlearned" else f"{m}/mia/forget_vs_test_acc"
            add = f", add. MIA {sel[key].mean():.1f}" if key in sel else ""
            name = sel["label"].iloc[0] if m == "unlearned" else m.capitalize()
            _loss_hist(axes[i, j], np.concatenate(pooled[m][0]), np.concatenate(pooled[m][1]),
                       f"{block} {sel['paradigm'].iloc[0]} [{table}]: {name}{add}")
        axes[i, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{spec.title} (seeds pooled: {df['seed'].nunique()})", fontsize=10)
    fig.tight_layout()
    return fig


def figlandscape(grid: dict[str, np.ndarray], spec, note: str) -> plt.Figure:
    """arXiv Fig. 6: the loss of the Retrain model around its weights: a contour map on D_r and 1-D slices
    along the first direction for D_r and the test set."""
    c = grid["coords"]
    mid = len(c) // 2
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    a, b = np.meshgrid(c, c, indexing="ij")
    cs = axes[0].contourf(a, b, np.log10(grid["retain"]), levels=20, cmap="viridis")
    axes[0].plot(0, 0, "r+", markersize=10)
    fig.colorbar(cs, ax=axes[0], label="log10 loss on D_r")
    axes[0].set_xlabel("direction 1 (filter-normalised)")
    axes[0].set_ylabel("direction 2")
    axes[0].set_title("loss surface on D_r")
    for name, color in (("retain", "tab:blue"), ("test", "tab:orange")):
        axes[1].plot(c, grid[name][:, mid], color=color, label="D_r" if name == "retain" else "test set")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step along direction 1")
    axes[1].set_ylabel("mean cross-entropy")
    axes[1].set_title("1-D slice through the Retrain model")
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    fig.suptitle(f"{spec.title} ({note})", fontsize=10)
    fig.tight_layout()
    return fig


def figforget(df: pd.DataFrame, spec) -> plt.Figure:
    """Reviewers' ask: UA, MIA, RA, TA and Avg. Gap against the forget-set size, per method; Retrain dashed (it
    changes with the size)."""
    _need(df, "figforget")
    x = "paradigm.forget_fraction"
    metrics = [*GAP_METRICS, "avg_gap"]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    ticks = sorted(set(100 * df[x].astype(float)))
    for (method, label), g in df[df["method"] != "retrain"].groupby(["method", "label"], sort=False):
        s = _stats(g, [x], metrics).sort_values(x)
        marker, color = OURS.get(method, ("o", None))
        for ax, metric in zip(axes, metrics):
            _band(ax, 100 * s[x].astype(float), s[metric], s[f"{metric}_std"], color=color, label=label)
    for ax, metric in zip(axes, metrics):
        if metric != "avg_gap":
            _retrain_line(ax, df.assign(pct=100 * df[x].astype(float)), metric, x="pct")
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("forget set (% of D_tr)")
        ax.set_title(("Avg. Gap to Retrain" if metric == "avg_gap" else metric) + " (%)" * (metric != "avg_gap"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{spec.title} ({_seeds_note(df)}, mean ± std)", fontsize=10)
    fig.tight_layout()
    return fig


def figgrid(df: pd.DataFrame, spec) -> plt.Figure:
    """Reviewers' ask: heat maps over p (rows) and alpha (columns) of Avg. Gap, UA and TA, one row of panels per
    method, mean over seeds; each cell is annotated with its value."""
    _need(df, "figgrid")
    metrics = ("avg_gap", "UA", "TA")
    methods = list(dict.fromkeys(df["method"]))
    fig, axes = plt.subplots(len(methods), 3, figsize=(13, 3.8 * len(methods)), squeeze=False)
    for i, method in enumerate(methods):
        g = df[df["method"] == method]
        for j, metric in enumerate(metrics):
            t = g.groupby(["p", "smooth_rate"])[metric].mean().unstack("smooth_rate").sort_index()
            ax = axes[i, j]
            cmap = "viridis_r" if metric == "avg_gap" else "viridis"
            im = ax.imshow(t.values, cmap=cmap, aspect="auto")
            ax.set_xticks(range(t.shape[1]), [f"{v:g}" for v in t.columns])
            ax.set_yticks(range(t.shape[0]), [f"{v:g}" for v in t.index])
            ax.set_xlabel("smooth rate α")
            ax.set_ylabel("p (weight of D_r)")
            for (r, c), v in np.ndenumerate(t.values):
                ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if im.norm(v) < 0.5 else "black")
            name = {"avg_gap": "Avg. Gap to Retrain (lower is better)"}.get(metric, f"{metric} (%)")
            ax.set_title(f"{g['label'].iloc[0]}: {name}", fontsize=9)
            fig.colorbar(im, ax=ax)
    fig.suptitle(f"{spec.title} ({_seeds_note(df)}, mean)", fontsize=10)
    fig.tight_layout()
    return fig
