"""The report's pictures, drawn with matplotlib (Agg) and returned as base64 PNG strings for inline <img>."""

from __future__ import annotations

import base64
import io
import textwrap
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
PHASES = (("read_s", "read"), ("vocode_s", "vocode"), ("write_s", "write"), ("wall_s", "wall"))
STYLE = {"axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
         "font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "savefig.dpi": 110}  # fmt: skip


def png(fig) -> str:
    """The figure as a base64 PNG (then closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _audio_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def timeline(spans: list[dict[str, Any]], startups: dict[str, tuple[float, float, float]]) -> str:
    """One lane per actor: its start-up (grey) and its shards (coloured bars) against seconds since the job began.

    spans: [{actor, start, end, shard}], seconds since the start; startups: actor -> (job start, engine build
    start, first shard start): the light part is planning, Ray and the actor's process, the hatched one loading
    the model and building its engine.
    """
    actors = sorted({s["actor"] for s in spans} | set(startups))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.5, 1.1 + 0.42 * len(actors)))
        for lane, actor in enumerate(actors):
            if actor in startups:
                a, b, c = startups[actor]
                ax.barh(lane, b - a, left=a, height=0.6, color="#e2e2e2", label="start: plan, Ray, actor process"
                        if lane == 0 else None)  # fmt: skip
                ax.barh(lane, c - b, left=b, height=0.6, color="#9e9e9e", hatch="///", edgecolor="white",
                        label="start: model load + engine build" if lane == 0 else None)  # fmt: skip
            mine = sorted((s for s in spans if s["actor"] == actor), key=lambda s: s["start"])
            bars = [(s["start"], s["end"] - s["start"]) for s in mine]
            for k, shade in enumerate((COLORS[lane % 10], _lighter(COLORS[lane % 10]))):  # one call per shade
                ax.broken_barh(bars[k::2], (lane - 0.3, 0.6), facecolors=shade, edgecolor="white", linewidth=0.5)
        ax.set_yticks(range(len(actors)), actors)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the job started")
        ax.set_xlim(left=0)
        ax.grid(axis="y", visible=False)
        if startups:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28 - 0.1 / len(actors)), ncol=2, fontsize=8,
                      frameon=False)  # fmt: skip
        ax.set_title("What each actor did: start-up, then one bar per shard (shades alternate)")
        return png(fig)


def _lighter(color: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(0.55 * c + 0.45 for c in color[:3])


def cumulative_audio(spans: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(t, audio done by t) at every span's start and end (and 0), t increasing: each span's audio counted as done
    evenly from its start to its end. Spans may overlap (an actor runs two shards at once): their audio adds up,
    and the curve never goes back in time."""
    t = np.unique(np.concatenate([[0.0], [s["start"] for s in spans], [s["end"] for s in spans]]))
    done = np.zeros_like(t)
    for s in spans:
        length = max(s["end"] - s["start"], 1e-9)
        done += s["audio"] * np.clip((t - s["start"]) / length, 0.0, 1.0)
    return t, done


def throughput(spans: list[dict[str, Any]]) -> str:
    """Audio vocoded over time per actor (cumulative; steeper is faster) and x real time of each shard."""
    total_audio = sum(s["audio"] for s in spans)
    scale, unit = _audio_unit(total_audio)
    by_actor: dict[str, list] = defaultdict(list)
    for s in spans:
        by_actor[s["actor"]].append(s)
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.4))
        curves = []
        for k, actor in enumerate(sorted(by_actor)):
            mine = sorted(by_actor[actor], key=lambda s: s["start"])
            x, y = cumulative_audio(mine)
            y = y / scale
            left.plot(x, y, color=COLORS[k % 10], label=actor, linewidth=1.5)
            curves.append((x, y))
            worked = [s for s in mine if s["audio"] > 0 or not s.get("reused")]  # all reused: no speed to draw
            mids = [(s["start"] + s["end"]) / 2 for s in worked]
            speed = [s["audio"] / max(s["end"] - s["start"], 1e-9) for s in worked]
            right.scatter(mids, speed, color=COLORS[k % 10], s=14, label=actor)
        if len(by_actor) > 1:  # the sum of the actors' curves
            grid = np.unique(np.concatenate([[0.0], [s["start"] for s in spans], [s["end"] for s in spans]]))
            total = sum(np.interp(grid, x, y) for x, y in curves)
            left.plot(grid, total, color="black", linestyle="--", linewidth=1, label="all actors")
        left.set_xlabel("seconds since the job started")
        left.set_ylabel(f"audio vocoded ({unit})")
        left.set_title("Audio done over time (steeper is faster)")
        if len(by_actor) > 12:  # one colour per actor stops helping: keep the total's entry only
            handles, labels = left.get_legend_handles_labels()
            handles, labels = handles[-1:], labels[-1:]
            left.legend(handles, labels, fontsize=8, frameon=False)
        else:
            left.legend(fontsize=8, frameon=False)
        right.set_xlabel("seconds since the job started")
        right.set_ylabel("x real time")
        right.margins(x=0.05, y=0.12)
        right.set_ylim(bottom=0)
        right.set_title("Speed of each shard (audio seconds vocoded / shard wall seconds)")
        fig.tight_layout()
        return png(fig)


def shard_timing(stats: list[dict[str, Any]]) -> str:
    """Per-phase seconds of every shard: a box per phase with each shard as a dot."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 3.0))
        data = [[float(s.get(key) or 0.0) for s in stats] for key, _ in PHASES]
        ax.boxplot(data, orientation="horizontal", widths=0.5, showfliers=False)
        rng = np.random.default_rng(0)
        for k, values in enumerate(data):
            jitter = (k + 1) + rng.uniform(-0.15, 0.15, len(values))
            ax.scatter(values, jitter, s=10, alpha=0.6, color=COLORS[k])
        ax.set_yticks(range(1, len(PHASES) + 1), [f"{label}\n(total {sum(d):.1f} s)" for (_, label), d in
                                                  zip(PHASES, data, strict=True)])  # fmt: skip
        ax.invert_yaxis()
        ax.set_xlabel("seconds per shard")
        ax.set_xlim(left=0)
        ax.set_title(f"Shard timing, {len(stats)} shards (read and write overlap vocoding)")
        return png(fig)


def mel_error_histogram(ok: list[float], suspect: list[float], threshold: float | None) -> str:
    """Distribution of the round-trip mel error of written rows, suspect ones apart, with the threshold."""
    values = np.asarray(ok + suspect, dtype=float)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 3.0))
        top = max(float(values.max()), threshold or 0.0) if values.size else 1.0
        bins = np.linspace(0.0, top * 1.05 if top > 0 else 1.0, 41)
        ax.hist([ok, suspect], bins=bins, stacked=True, color=[COLORS[2], COLORS[3]],
                label=[f"ok ({len(ok)})", f"suspect ({len(suspect)})"])  # fmt: skip
        if threshold is not None:
            ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"check.max_mel_error = {threshold:g}", (threshold, ax.get_ylim()[1] * 0.97), xytext=(-4, 0),
                        textcoords="offset points", fontsize=8, ha="right", va="top")  # fmt: skip
        ax.set_xlabel("mel error (input mel against the mel of the audio written for it)")
        ax.set_ylabel("rows")
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        ax.set_title("Round-trip check: how far each output's mel is from its input mel")
        return png(fig)


def mel_pair(mel_in: np.ndarray | None, mel_out: np.ndarray, silence: float) -> str:
    """Input mel beside the output's mel (same colour scale, frequency up)."""
    shown = [m for m in (mel_in, mel_out) if m is not None]
    high = max(float(m.max()) for m in shown)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 2.4), sharey=True)
        for ax, mel, what in zip(axes, (mel_in, mel_out), ("input mel", "output's mel"), strict=True):
            if mel is None:
                ax.text(0.5, 0.5, "input mel not found in input.manifest", ha="center", va="center",
                        transform=ax.transAxes)  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=silence, vmax=high,
                                  interpolation="nearest")  # fmt: skip
            ax.set_title(what)
            ax.set_xlabel("frame")
        axes[0].set_ylabel("mel band")
        fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.01, label="log mel")
        return png(fig)


def failure_bars(kinds: list[tuple[str, int]], title: str) -> str:
    """Rows per kind of failure reason (the most frequent first, up to 12)."""
    shown = kinds[:12]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9.5, 0.8 + 0.38 * len(shown)))
        labels = [textwrap.shorten(kind, 90, placeholder=" …") for kind, _ in shown]
        counts = [n for _, n in shown]
        ax.barh(range(len(shown)), counts, color=COLORS[3], height=0.6)
        for y, n in enumerate(counts):
            ax.annotate(str(n), (n, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(range(len(shown)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("rows")
        ax.grid(axis="y", visible=False)
        ax.set_title(title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        return png(fig)
