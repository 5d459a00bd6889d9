"""Write bench/results.md (markdown tables) and bench/results.png (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.pauses import seconds_paused

E2E_TARGET = 20_000
P99_TARGET_MS = 50.0
FRESHNESS_TARGET_MS = 2000.0
RSS_TARGET = 450 * 1024 * 1024  # the worker that holds the embedded chDB store
INGEST_RSS_TARGET = 130 * 1024 * 1024  # an ingest-only worker (no store)
FLAT_WINDOW_S = 600.0  # memory must stay flat over a run this long
FLAT_SKIP_S = 60.0  # the first minute of the window warms caches and buffers
FLAT_GROWTH = 0.05  # "flat": the fitted growth over the window is at most 5 % of the start


def num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def memory_trend(samples: list[dict[str, float]], key: str, t0: float, t1: float) -> dict[str, Any]:
    """RSS over [t0 + FLAT_SKIP_S, t1]: first and last sample and the linear fit's growth."""
    points = [(s["t"], s[key]) for s in samples if key in s and t0 + FLAT_SKIP_S <= s["t"] <= t1]
    if len(points) < 3:
        return {"start": math.nan, "end": math.nan, "growth": math.nan, "per_min": math.nan}
    t, v = (np.array(x) for x in zip(*points, strict=True))
    slope = float(np.polyfit(t, v, 1)[0])
    return {
        "start": float(v[0]),
        "end": float(v[-1]),
        "growth": slope * float(t[-1] - t[0]),
        "per_min": slope * 60.0,
    }


def derived(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures, computed once for the markdown, the plot and the targets."""
    tf = results["trackflow"]
    steps = tf["steps"]
    at80_label = tf.get("at80_label")
    stepped = [s for s in steps if s["label"] != at80_label]
    kept = [s for s in stepped if s["kept_up"]]
    sustained = max((s["e2e"] for s in kept), default=0.0)
    peak_e2e = max((s["e2e"] for s in steps), default=0.0)
    b_kafka = results["b_kafka"]["events_per_s"]
    b_store = results["b_store"]["events_per_s"]
    b_http = results["b_http"]["accepted_events_per_s"]
    edge = tf["probe"]["edge_events_per_s"]
    totals = tf["store_totals"]
    sent_ok = tf["probe"]["loadgen"]["events_ok"] + sum(s["loadgen"]["events_ok"] for s in steps)
    final = tf["final"]
    accepted_metric = final["accepted"]
    at80 = next((s for s in steps if s["label"] == at80_label), None)
    ref = at80 or (kept[-1] if kept else None)
    samples = tf.get("samples", [])
    window = (at80["t_start"], at80["t_send_end"]) if at80 else (math.nan, math.nan)
    memory = {key: memory_trend(samples, key, *window) for key in ("worker_rss", "worker_rss_anon")}
    return {
        "memory": memory,
        "memory_window_s": window[1] - window[0],
        "steps": steps,
        "stepped": stepped,
        "sustained": sustained,
        "peak_e2e": peak_e2e,
        "b_kafka": b_kafka,
        "b_store": b_store,
        "b_http": b_http,
        "edge": edge,
        "e2e_ratio": sustained / min(b_kafka, b_store) if min(b_kafka, b_store) else math.nan,
        "edge_ratio": edge / b_http if b_http else math.nan,
        "sent_ok": sent_ok,
        "accepted_metric": accepted_metric,
        "count": int(totals["n"]),
        "uniq": int(totals["uniq"]),
        "count_final": int(totals["n_final"]),
        "dead": final["dead"],
        "loss": sent_ok - int(totals["uniq"]),
        "duplicates_visible": int(totals["n_final"]) - int(totals["uniq"]),
        "duplicates_raw": int(totals["n"]) - int(totals["uniq"]),
        "peak_rss": tf["worker_peak_rss"],
        "ingest_peak_rss": tf.get("ingest_peak_rss", []),
        "at80": at80,
        "ref": ref,
    }


def memory_target(d: dict[str, Any]) -> tuple[str, str, bool]:
    rss = d["memory"]["worker_rss"]
    label = "memory flat over a 10-minute run (80 % step)"
    if not d["memory_window_s"] >= 0.99 * FLAT_WINDOW_S:  # the last batch leaves just before
        return label, "not measured: the 80 % step is shorter than 10 minutes", False
    growth = rss["growth"] / rss["start"] if rss["start"] else math.nan
    measured = (
        f"{num(rss['start'] / 2**20)} → {num(rss['end'] / 2**20)} MB after the first minute; "
        f"fitted growth {num(rss['per_min'] / 2**20, 1)} MB/min ({num(growth * 100, 1)} %)"
    )
    return label, measured, growth <= FLAT_GROWTH


def ingest_memory_target(d: dict[str, Any]) -> tuple[str, str, bool]:
    label = f"ingest-only worker peak RSS ≤ {INGEST_RSS_TARGET >> 20} MB"
    peaks = d["ingest_peak_rss"]
    if not peaks:
        return label, "not measured: the run had no ingest-only worker", False
    return label, ", ".join(f"{num(p / 2**20)} MB" for p in peaks), max(peaks) <= INGEST_RSS_TARGET


def targets(d: dict[str, Any]) -> list[tuple[str, str, bool]]:
    at80 = d["at80"]
    p99 = at80["loadgen"]["latency_ms"]["p99"] if at80 else math.nan
    fresh99 = float(at80["store"].get("f99", math.nan)) if at80 else math.nan
    zero = d["loss"] == 0 and d["duplicates_visible"] == 0 and d["count_final"] == d["sent_ok"]
    floor = 0.5 * min(d["b_kafka"], d["b_store"])
    return [
        (f"e2e ≥ {E2E_TARGET:,} events/s", f"{num(d['sustained'])} events/s",
         d["sustained"] >= E2E_TARGET),
        ("e2e ≥ 0.5 x min(B-kafka, B-store)", f"{num(d['sustained'])} vs {num(floor)}",
         d["sustained"] >= floor),
        (f"POST p99 ≤ {P99_TARGET_MS:.0f} ms at 80 % of sustained", f"{num(p99, 1)} ms",
         p99 <= P99_TARGET_MS),
        ("freshness p99 ≤ 2 s at 80 % of sustained", f"{num(fresh99)} ms",
         fresh99 <= FRESHNESS_TARGET_MS),
        (f"worker peak RSS ≤ {RSS_TARGET >> 20} MB", f"{num(d['peak_rss'] / 2**20)} MB",
         d["peak_rss"] <= RSS_TARGET),
        ingest_memory_target(d),
        memory_target(d),
        ("zero loss, zero visible duplicates",
         f"loss {d['loss']}, duplicates {d['duplicates_visible']}", zero),
    ]  # fmt: skip


def pause_note(results: dict[str, Any]) -> str | None:
    """A warning naming the steps during which the whole machine stood still, if any did."""
    pauses = results["machine"].get("pauses") or []
    if not pauses:
        return None
    when = ", ".join(
        f"{seconds:.1f} s at {time.strftime('%H:%M:%S', time.localtime(began))}"
        for began, seconds in pauses
    )
    hit = [
        f"{step['label']} ({paused:.1f} s)"
        for step in results.get("trackflow", {}).get("steps", [])
        if (paused := seconds_paused(pauses, step["t_start"], step_end(step))) > 0
    ]
    steps = f"; in step {', '.join(hit)}" if hit else ""
    return (
        f"**The whole machine stood still {len(pauses)} time(s) during this run** ({when}{steps}): "
        "no process ran, the load generator's included (a paused virtual machine or swapping; "
        "`bench/pauses.py`). The latency, freshness and rates of those steps are not the "
        "pipeline's; run again."
    )


def step_end(step: dict[str, Any]) -> float:
    end: float = step.get("t_drained") or step["t_send_end"] + (step.get("drain_s") or 0.0)
    return end


def markdown(results: dict[str, Any], d: dict[str, Any]) -> str:
    plan = results["plan"]
    tf = results["trackflow"]
    probe = tf["probe"]
    machine = results["machine"]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(results["started"]))
    out: list[str] = [
        f"# TrackFlow ingestion benchmark — {plan['name']} run",
        "",
        f"{started}, {machine['cpus']} CPUs, Python {machine['python']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])} / at end "
        f"{', '.join(f'{x:.2f}' for x in machine['loadavg_at_end'])}; run took "
        f"{results['elapsed_s']:.0f} s. Everything (Kafka, the worker, the load generator, the "
        "baselines) shares this machine; a load average above ~0.5 before the run means other "
        "work was running and **the figures are noisy**. See bench/README.md for definitions.",
        "",
    ]
    note = pause_note(results)
    if note:
        out += [note, ""]
    out += ["## Headline", ""]
    headline = [
        ["estimated max (probe)", f"{num(tf['estimate'])} events/s",
         f"edge saturated {num(probe['edge_events_per_s'])}/s, downstream alone "
         f"{num(probe['drain_events_per_s'])}/s"],
        ["TrackFlow e2e sustained", f"**{num(d['sustained'])} events/s**",
         "highest step that kept up; rows/s into ClickHouse (store inserted_at)"],
        ["TrackFlow e2e peak", f"{num(d['peak_e2e'])} events/s", "any step, incl. overload"],
        ["TrackFlow edge max", f"{num(d['edge'])} events/s", "202s/s, saturating closed loop"],
        ["B-http", f"{num(d['b_http'])} events/s", "aiohttp server: parse + 202, same generator"],
        ["B-kafka", f"{num(d['b_kafka'])} events/s",
         f"produce+consume; produce alone {num(results['b_kafka']['produce_events_per_s'])}/s"],
        ["B-store", f"{num(d['b_store'])} events/s",
         f"the sink's inserts of processed records, batches of "
         f"{results['b_store']['batch_size']:,}"],
        ["e2e ÷ min(B-kafka, B-store)", f"**{num(d['e2e_ratio'], 2)}**", ""],
        ["edge ÷ B-http", f"**{num(d['edge_ratio'], 2)}**", ""],
        ["events accepted (202) / metric", f"{d['sent_ok']:,} / {num(d['accepted_metric'])}",
         "load generator's 202s / trackflow_events_accepted_total"],
        ["count() / uniqExact(event_id) / count() FINAL",
         f"{d['count']:,} / {d['uniq']:,} / {d['count_final']:,}",
         f"loss {d['loss']}, visible duplicates {d['duplicates_visible']}, "
         f"raw duplicates before merge {d['duplicates_raw']}, dead-lettered {num(d['dead'])}"],
        ["consumer lag after drain (raw / processed)",
         f"{num(tf['final'].get('lag_raw'))} / {num(tf['final'].get('lag_processed'))}",
         "Faust app group / sink group"],
        ["worker peak RSS", f"{num(d['peak_rss'] / 2**20)} MB",
         f"VmHWM of the worker process with the sink; the B-store process (chDB + its rows) "
         f"peaked at {num(results['b_store'].get('peak_rss', math.nan) / 2**20)} MB"],
        ["worker RSS over the 80 % step (after its first minute)",
         f"{num(d['memory']['worker_rss']['start'] / 2**20)} → "
         f"{num(d['memory']['worker_rss']['end'] / 2**20)} MB",
         f"of which anonymous (heap, not file-backed pages such as chDB's library): "
         f"{num(d['memory']['worker_rss_anon']['start'] / 2**20)} → "
         f"{num(d['memory']['worker_rss_anon']['end'] / 2**20)} MB; fitted growth "
         f"{num(d['memory']['worker_rss']['per_min'] / 2**20, 1)} MB/min"],
        ["worker CPU-s per million events",
         num(d["ref"]["worker_cpu_s_per_million"] if d["ref"] else math.nan),
         f"at step {d['ref']['label'] if d['ref'] else '-'}"],
        ["worker shutdown", f"{tf['worker_stop_s']:.1f} s, exit {tf['worker_exit_code']}", ""],
    ]  # fmt: skip
    out += [table(["figure", "value", "note"], headline), ""]

    out += ["## Steps: throughput, latency, freshness", ""]
    rows = []
    for s in d["steps"]:
        lat = s["loadgen"]["latency_ms"]
        st = s["store"]
        rows.append(
            [
                s["label"],
                num(s["offered"]),
                num(s["accepted"]),
                num(s["e2e"]),
                num(lat["p50"], 1),
                num(lat["p99"], 1),
                num(lat["p999"], 1),
                num(lat["max"], 0),
                f"{num(st.get('f50'))} / {num(st.get('f99'))} / {num(st.get('fmax'))}",
                f"{num(st.get('s50'))} / {num(st.get('s99'))}",
                "yes" if s["kept_up"] else "**no**",
            ]
        )
    out += [
        table(
            [
                "step",
                "offered ev/s",
                "accepted ev/s",
                "e2e ev/s",
                "POST p50 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "freshness p50/p99/max ms",
                "sched→stored p50/p99 ms",
                "kept up",
            ],
            rows,
        ),
        "",
        "POST latency is measured from each request's *scheduled* send time (open loop). "
        "Freshness = inserted_at - received_at per row; sched→stored adds the POST part "
        "(inserted_at - scheduled send time, carried in client_timestamp).",
        "",
        "## Steps: lag and resources",
        "",
    ]
    rows = []
    for s in d["steps"]:
        lg = s["loadgen"]
        rows.append(
            [
                s["label"],
                f"{lg['requests']:,}",
                num(lg["mean_batch"], 1),
                str(s["failed_requests"]),
                f"{num(s['lag_raw_end'])} / {num(s['lag_processed_end'])}",
                num(s["backlog_end"]),
                f"{s['drain_s']:.1f}" + ("" if s["drained"] else " (timeout)"),
                f"{s['worker_cpu_share']:.0%}",
                num(s["worker_cpu_s_per_million"]),
                num(s["worker_rss_max"] / 2**20),
                f"{num(s.get('store_merge_memory_max', math.nan) / 2**20)} / "
                f"{num(s.get('store_parts_max', math.nan))}",
                f"{s['broker_cpu_share']:.0%}",
                f"{s['gen_cpu_share']:.0%}",
                num(lg["dispatch_late_ms"]["p99"], 1),
            ]
        )
    out += [
        table(
            [
                "step",
                "requests",
                "mean batch",
                "non-202",
                "lag raw/processed at end",
                "backlog at end",
                "drain s",
                "worker CPU",
                "worker CPU-s/M ev",
                "worker RSS MB",
                "store merges MB / parts (max)",
                "Kafka CPU",
                "generator CPU",
                "dispatch late p99 ms",
            ],
            rows,
        ),
        "",
        "CPU shares are of one core (100 % = one core busy). The generator's share is "
        "its getrusage over the step; 'dispatch late' is how far behind schedule it handed "
        "requests to its HTTP client (charged to latency, not hidden).",
        "",
        "## Targets",
        "",
    ]
    if plan["thresholds"]:
        rows = [[t, m, "PASS" if ok else "**FAIL**"] for t, m, ok in targets(d)]
        out += [table(["target", "measured", "result"], rows)]
    else:
        rows = [[t, m, "not applied"] for t, m, _ in targets(d)]
        out += [
            "Short (smoke) run: targets are shown for orientation only and not applied.",
            "",
            table(["target", "measured", "result"], rows),
        ]
    b_store = results["b_store"]
    out += [
        "",
        "## Configuration",
        "",
        f"- Plan: steps {', '.join(f'{x:.0%}' for x in plan['steps'])} of the estimate "
        f"({plan['step_s']:.0f} s each, first {plan['warmup_s']:.1f} s excluded from rates), "
        f"{plan['connections']} keep-alive connections, {plan['tenants']} tenants, "
        f"{plan['sessions']:,} sessions, batches of 1-50 events; the generator's HTTP client: "
        f"{generator_client(d)}.",
        f"- Worker: {', '.join(f'{k}={v}' for k, v in sorted(tf['worker_env'].items()))}",
        f"- Ingest-only workers (TRACKFLOW_SINK_ENABLED=false, same topics and group, the load "
        f"generator spreads batches over every edge): {plan.get('ingest_workers', 0)}; their "
        f"peak RSS: {', '.join(f'{num(r / 2**20)} MB' for r in tf.get('ingest_peak_rss', []))}"
        f"{'-' if not tf.get('ingest_peak_rss') else ''}. Worker CPU figures are summed over "
        "all worker processes.",
        f"- B-store: {b_store['events']:,} rows in {b_store['inserts']} inserts; "
        f"B-kafka: {results['b_kafka']['events']:,} events, "
        f"{results['b_kafka']['partitions']} partitions, linger {results['b_kafka']['linger_ms']}"
        " ms.",
        "",
    ]
    return "\n".join(out)


def generator_client(d: dict[str, Any]) -> str:
    """bench.rawhttp's ("raw") or aiohttp's; results from before the choice existed used aiohttp."""
    clients = {s["loadgen"].get("client", "aiohttp") for s in d["steps"]}
    return ", ".join(sorted(clients)) or "-"


def plot(results: dict[str, Any], d: dict[str, Any], path: Path) -> None:
    tf = results["trackflow"]
    samples = tf["samples"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    fig.suptitle(
        f"TrackFlow ingestion benchmark ({results['plan']['name']} run; shared machine, noisy)"
    )

    ax = axes[0][0]
    if len(samples) > 1:
        t = np.array([s["t"] for s in samples])
        t0 = t[0]
        lag = 4  # rates over ~2 s (samples every 0.5 s): the sink inserts in 0.5 s windows
        for key, label in (("accepted", "accepted (edge)"), ("rows", "inserted (ClickHouse)")):
            v = np.array([s[key] for s in samples])
            k = min(lag, len(v) - 1)
            rate = (v[k:] - v[:-k]) / np.maximum(t[k:] - t[:-k], 1e-3)
            ax.plot((t[k:] + t[:-k]) / 2 - t0, rate, label=f"{label} events/s", lw=1)
        for s in d["steps"]:
            ax.hlines(s["offered"], s["t_start"] - t0, s["t_send_end"] - t0, colors="k", lw=2)
        ax2 = ax.twinx()
        for key, style in (("lag_raw", ":"), ("lag_processed", "--")):
            v = np.array([s.get(key, np.nan) for s in samples], dtype=float)
            ax2.plot(t - t0, v, style, color="grey", lw=1, label=key.replace("_", " "))
        ax2.set_ylabel("consumer lag (records)")
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_title("rates over time (black: offered per step)")
    ax.set_xlabel("s since worker ready")
    ax.set_ylabel("events/s")
    ax.legend(loc="upper left", fontsize=8)

    steps = d["steps"]
    offered = [s["offered"] for s in steps]
    ax = axes[0][1]
    for key, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        ax.plot(offered, [s["loadgen"]["latency_ms"][key] for s in steps], "o-", label=label)
    ax.set_yscale("log")
    ax.axhline(P99_TARGET_MS, color="r", ls=":", lw=1, label="p99 target")
    ax.set_title("POST latency from scheduled send (open loop)")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    lines = (("f50", "p50"), ("f99", "p99"), ("fmax", "max"), ("s99", "sched→stored p99"))
    for key, label in lines:
        ax.plot(offered, [float(s["store"].get(key, np.nan)) for s in steps], "o-", label=label)
    ax.axhline(FRESHNESS_TARGET_MS, color="r", ls=":", lw=1, label="p99 target")
    ax.set_title("freshness (inserted_at - received_at)")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    names = ["B-http", "B-kafka", "B-store", "TF edge\nmax", "TF e2e\nsustained"]
    values = [d["b_http"], d["b_kafka"], d["b_store"], d["edge"], d["sustained"]]
    colors = ["#999999", "#999999", "#999999", "#4c72b0", "#dd8452"]
    bars = ax.bar(names, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    ax.axhline(E2E_TARGET, color="r", ls=":", lw=1, label="e2e target")
    ax.set_title("throughput: baselines vs TrackFlow")
    ax.set_ylabel("events/s")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> str:
    d = derived(results)
    text = markdown(results, d)
    (out / "results.md").write_text(text, encoding="utf-8")
    plot(results, d, out / "results.png")
    return text
