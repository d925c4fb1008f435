"""benchmarks.png: claim latency and switch latency per contender and table count (log scale)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from report import ORDER  # noqa: E402

LABELS = {"floor": "floor", "warm": "irisvip warm", "cold": "irisvip cold", "warm-dist": "irisvip warm (dist)",
          "cold-dist": "irisvip cold (dist)", "warm-role": "irisvip warm, role_arn",
          "cold-role": "irisvip cold, role_arn", "seed": "seed (Python+boto3)",
          "awscli": "aws CLI", "agent": "aws-vpc-move-ip"}
COLORS = {"floor": "#7f7f7f", "warm": "#1f77b4", "cold": "#2ca02c", "warm-dist": "#17becf", "cold-dist": "#bcbd22",
          "warm-role": "#8c564b", "cold-role": "#e377c2",
          "seed": "#d62728", "awscli": "#ff7f0e",
          "agent": "#9467bd"}


def plot(results, path):
    s = results["summary"]
    tables = list(s.keys())
    keys = [k for k in ORDER if any(k in s[n] for n in tables)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    panels = (("claim", "claim latency (call → return)"),
              ("switch_poll", "switch latency (call → new route seen by the poller)"))
    width = 0.8 / max(1, len(keys))
    for ax, (metric, title) in zip(axes, panels):
        for j, key in enumerate(keys):
            xs, meds, lo, hi = [], [], [], []
            for i, n in enumerate(tables):
                st = s[n].get(key, {}).get(metric)
                if not st:
                    continue
                xs.append(i + (j - (len(keys) - 1) / 2) * width)
                meds.append(st["median"])
                lo.append(st["median"] - st["min"])
                hi.append(st["max"] - st["median"])
            if xs:
                ax.bar(xs, meds, width * 0.92, yerr=[lo, hi], capsize=2, color=COLORS[key], label=LABELS[key],
                       error_kw={"elinewidth": 0.8})
                for x, v, up in zip(xs, meds, hi):
                    text = f"{v:.0f}" if v >= 10 else f"{v:.1f}"
                    ax.annotate(text, (x, v + up), xytext=(0, 3), textcoords="offset points", ha="center",
                                va="bottom", fontsize=6.5, rotation=90)
        ax.set_yscale("log")
        lo_y, hi_y = ax.get_ylim()
        ax.set_ylim(lo_y, hi_y * 2.5)  # room for the labels above the whiskers
        ax.set_xticks(range(len(tables)))
        ax.set_xticklabels([f"{n} route table{'s' if n != '1' else ''}" for n in tables])
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("ms (median; whiskers: min–max)")
    axes[0].legend(fontsize=8, loc="upper left")
    m = results["machine"]
    fig.suptitle(f"Moving the VIP route in moto's EC2 — {m['nproc']} × {m['cpu']}, "
                 f"{results['args']['runs']} runs each", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
