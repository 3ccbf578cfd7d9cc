"""Benchmark: our NumPy sigmoid network against scikit-learn's MLPClassifier (and torch, if any).

    python benchmarks/bench_network.py            # full run (~1-3 minutes on 2 cores)
    python benchmarks/bench_network.py --quick    # smoke run, a few seconds

Every ratio is measured in this run, on this machine: runs are interleaved (the order rotates
every repeat) so load from other processes hits all sides alike, and medians are reported.
Our fit holds BLAS to one thread; the head-to-head shows sklearn both with the machine's BLAS
threads and with one thread, the scaling tables use sklearn with one thread (like for like,
and immune to the stalls a busy machine causes in multi-threaded BLAS on small matrices).
Sections: head-to-head on the issue's setup (100,000 x 32 float64, binary, hidden (64, 64),
sigmoid, SGD + Nesterov momentum 0.9, batch 256, 10 epochs, no early stopping), the GEMM floor
(the same matmuls timed alone), scaling with rows and width, and peak memory at 1,000,000 rows
(in a subprocess, so earlier allocations do not count), the cost per epoch of each numeric
encoding and training-recipe option against the plain network, and the cost of the per-layer
health curves (`--diagnostics`: that section alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.network import SigmoidNetworkClassifier  # noqa: E402
from pipeline.network.core import Network, Workspace  # noqa: E402

warnings.filterwarnings("ignore", message=".*Maximum iterations.*")
warnings.filterwarnings("ignore", message=".*Stochastic Optimizer.*")


def make_data(n: int, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features, a noisy linear-plus-interaction binary target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    score = X @ w + 0.5 * X[:, 0] * X[:, 1] + rng.standard_normal(n)
    return X, (score > 0).astype(np.int64)


def shared_args(hidden: tuple[int, ...], epochs: int, seed: int = 0) -> dict:
    """Identical constructor arguments for MLPClassifier and ours (tol=0: never stop early)."""
    return dict(hidden_layer_sizes=hidden, activation="logistic", solver="sgd", momentum=0.9,
                nesterovs_momentum=True, batch_size=256, learning_rate_init=0.001, alpha=1e-4,
                max_iter=epochs, shuffle=True, tol=0.0, n_iter_no_change=10_000,
                early_stopping=False, random_state=seed)


def fit_sklearn(X, y, hidden, epochs) -> tuple[float, float]:
    from sklearn.neural_network import MLPClassifier

    t0 = time.perf_counter()
    est = MLPClassifier(**shared_args(hidden, epochs)).fit(X, y)
    return time.perf_counter() - t0, est.loss_curve_[-1]


def fit_sklearn_1thread(X, y, hidden, epochs) -> tuple[float, float]:
    """MLPClassifier with BLAS held to one thread, as our fit does: the like-for-like row."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return fit_sklearn(X, y, hidden, epochs)


def fit_ours(X, y, hidden, epochs) -> tuple[float, float]:
    t0 = time.perf_counter()
    est = SigmoidNetworkClassifier(**shared_args(hidden, epochs)).fit(X, y)
    return time.perf_counter() - t0, est.loss_curve_[-1]


def fit_torch(X, y, hidden, epochs) -> tuple[float, float]:
    import torch

    torch.manual_seed(0)
    t0 = time.perf_counter()
    Xt = torch.from_numpy(X.astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32)).reshape(-1, 1)
    layers, fan_in = [], X.shape[1]
    for width in hidden:
        layers += [torch.nn.Linear(fan_in, width), torch.nn.Sigmoid()]
        fan_in = width
    model = torch.nn.Sequential(*layers, torch.nn.Linear(fan_in, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n, loss_sum = X.shape[0], 0.0
    for _ in range(epochs):
        perm, loss_sum = torch.randperm(n), 0.0
        for start in range(0, n, 256):
            rows = perm[start:start + 256]
            opt.zero_grad()
            loss = loss_fn(model(Xt[rows]), yt[rows])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * rows.shape[0]
    return time.perf_counter() - t0, loss_sum / n


def interleaved(runners: dict, X, y, hidden, epochs, repeats) -> dict[str, tuple[float, float]]:
    """{name: (median seconds, median final loss)}; the run order rotates every repeat."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    losses: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds, loss = runners[name](X, y, hidden, epochs)
            times[name].append(seconds)
            losses[name].append(loss)
    return {k: (statistics.median(times[k]), statistics.median(losses[k])) for k in runners}


def gemm_floor(X, y, hidden, epochs, repeats) -> tuple[float, float]:
    """(median seconds of our fit, median seconds of its matmuls alone), same shapes and count.

    The floor replays every BLAS call the training epochs make (forward GEMMs, A.T @ D weight
    gradients, D @ W.T back-propagation, bias GEMVs) on the same preallocated buffers; what is
    left over is elementwise work, the optimiser, batch gathering and Python.
    """
    sizes = [X.shape[1], *hidden, 1]
    net = Network(sizes, "sigmoid", "binary", np.float32)
    net.init(np.random.default_rng(0))
    B, n = 256, X.shape[0]
    ws = Workspace(net, B, 1)
    views = {m: ws.views(m) for m in {B, n % B or B}}
    ws.X[...] = X[:B]
    batch_sizes = [min(B, n - s) for s in range(0, n, B)]
    W, gW, gb = net.W, net.gW, net.gb
    L = net.n_layers

    def matmuls_only() -> float:
        t0 = time.perf_counter()
        for _ in range(epochs):
            for m in batch_sizes:
                A, D, _, _, ones = views[m]
                for i in range(L):
                    np.dot(A[i], W[i], out=A[i + 1])
                for i in range(L - 1, -1, -1):
                    np.dot(A[i].T, D[i + 1], out=gW[i])
                    np.dot(ones, D[i + 1], out=gb[i])
                    if i > 0 and W[i].shape[1] > 1:
                        np.dot(D[i + 1], W[i].T, out=D[i])
        return time.perf_counter() - t0

    for bufs in (ws.D[1:], ws.A[1:]):
        for a in bufs:
            a[...] = 0.1
    ours, floor = [], []
    from threadpoolctl import threadpool_limits

    for _ in range(repeats):
        ours.append(fit_ours(X, y, hidden, epochs)[0])
        with threadpool_limits(limits=1, user_api="blas"):  # as in our fit
            floor.append(matmuls_only())
    return statistics.median(ours), statistics.median(floor)


MEMORY_CHILD = r"""
import json, sys, tracemalloc, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
from pipeline.network import SigmoidNetworkClassifier
warnings.simplefilter("ignore")

def high_water_mark():  # VmHWM: peak RSS of this process (ru_maxrss can inherit the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

n = int(sys.argv[2])
base_rss = high_water_mark()
tracemalloc.start()
rng = np.random.default_rng(0)
X = rng.standard_normal((n, 32))
y = (X[:, 0] + rng.standard_normal(n) > 0).astype(np.int64)
SigmoidNetworkClassifier(hidden_layer_sizes=(64, 64), solver="sgd", batch_size=256,
                         max_iter=1, random_state=0).fit(X, y)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"input": X.nbytes, "traced_peak": peak, "rss_peak": high_water_mark(),
                  "rss_base": base_rss}))
"""


def memory(n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT), str(n)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed_fit(X, y, Xv, yv, hidden, epochs) -> tuple[float, float]:
    """(fit seconds, seconds inside the per-layer health hook) of one fit with an eval_set, as
    cross_validate runs it. Timing the hook itself is immune to the machine's load, which
    swamps a few percent between two separate fits."""
    from pipeline.network.diagnostics import LayerHealth

    class Timed(LayerHealth):
        spent = 0.0

        def health(self, net, X, Y):  # noqa: ANN001, ANN202 - the hook's own signature
            t0 = time.perf_counter()
            out = super().health(net, X, Y)
            Timed.spent += time.perf_counter() - t0
            return out

    clf = SigmoidNetworkClassifier(hidden_layer_sizes=hidden, batch_size=128, max_iter=epochs,
                                   tol=0.0, n_iter_no_change=10_000, random_state=0)
    t0 = time.perf_counter()
    clf.fit(X, y, eval_set=(Xv, yv), diagnostics=Timed())
    return time.perf_counter() - t0, Timed.spent


def diagnostics_cost(quick: bool, repeats: int) -> list[list[str]]:
    """Per setting: ms per epoch of the fit and of the health hook in it, the hook's share."""
    epochs = 3 if quick else 10
    settings = [(8_000, 21, (32,)), (8_000, 21, (64, 64)), (1_000, 21, (32,)),
                (100_000, 32, (64, 64))]
    rows = []
    for n, d, hidden in settings[:3] if quick else settings:
        X, y = make_data(n, d)
        cut = int(0.8 * n)  # one fold: 80% trains, the held-out 20% is the eval_set
        runs = [timed_fit(X[:cut], y[:cut], X[cut:], y[cut:], hidden, epochs)
                for _ in range(repeats)]
        fit_s = statistics.median(r[0] for r in runs) / epochs
        hook_s = statistics.median(r[1] for r in runs) / epochs
        rows.append([f"{cut:,} x {d}", str(hidden), f"{(fit_s - hook_s) * 1e3:.2f}",
                     f"{hook_s * 1e3:.2f}", f"{hook_s / (fit_s - hook_s):.1%}"])
    return rows


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    print("  ".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = "?"
    try:
        from threadpoolctl import threadpool_info

        threads = ", ".join(f"{i['internal_api']}={i['num_threads']}" for i in threadpool_info())
    except Exception:  # noqa: BLE001 - informational only
        pass
    import sklearn

    return (f"{cpu}; {os.cpu_count()} cpus; python {platform.python_version()}; numpy "
            f"{np.__version__}; scikit-learn {sklearn.__version__}; BLAS threads: {threads}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved runs per side")
    parser.add_argument("--diagnostics", action="store_true",
                        help="only section 5: the per-layer health's cost per epoch")
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 5)
    if args.diagnostics:
        diagnostics_table(quick, repeats)
        return 0
    n_main, epochs = (20_000, 3) if quick else (100_000, 10)
    print(f"machine: {machine()}")
    print(f"mode: {'quick' if quick else 'full'}; {repeats} interleaved repeat(s); medians")

    # 1. head-to-head on the setup ---------------------------------------------------
    X, y = make_data(n_main)
    runners = {"sklearn MLPClassifier": fit_sklearn, "ours": fit_ours,
               "sklearn, BLAS 1 thread": fit_sklearn_1thread}
    torch_note = "skipped (torch not installed)"
    try:
        import torch  # noqa: F401

        fit_torch(X[:512], y[:512], (64, 64), 1)  # smoke run: a broken torch skips the row
        runners["torch CPU"] = fit_torch
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - report, do not fail the whole benchmark
        torch_note = f"skipped ({type(e).__name__}: {e})"[:80]
    res = interleaved(runners, X, y, (64, 64), epochs, repeats)
    sk_time, sk_loss = res["sklearn MLPClassifier"]
    ours_time, ours_loss = res["ours"]
    rows = []
    for name, (seconds, loss) in res.items():
        rows.append([name, f"{seconds:.3f}",
                     "-" if name == "ours" else f"{seconds / ours_time:.2f}x",
                     f"{loss:.5f}", f"{(loss / sk_loss - 1) * 100:+.2f}%"])
    if "torch CPU" not in res:
        rows.append(["torch CPU", torch_note, "", "", ""])
    table(f"Training: {n_main:,} x 32 float64, binary, hidden (64, 64), sigmoid, SGD nesterov "
          f"0.9, batch 256, {epochs} epochs", ["model", "fit s (median)", "ours is faster by",
                                              "final loss", "loss vs sklearn"], rows)
    speedup = sk_time / ours_time
    loss_ok = ours_loss <= 1.05 * sk_loss
    print("ours holds BLAS to 1 thread while fitting; 'sklearn MLPClassifier' runs with this "
          "machine's BLAS threads, 'sklearn, BLAS 1 thread' like ours")
    print(f"target >= 3.0x vs MLPClassifier and loss within +5%: speed-up {speedup:.2f}x "
          f"[{'PASS' if speedup >= 3.0 else 'FAIL'}], loss {(ours_loss / sk_loss - 1):+.2%} "
          f"[{'PASS' if loss_ok else 'FAIL'}]")

    # 2. GEMM floor ------------------------------------------------------------------------
    ours_s, floor_s = gemm_floor(X, y, (64, 64), epochs, repeats)
    table("Share of time in matrix multiplications (same matmuls timed alone)",
          ["ours fit s", "matmuls alone s", "share in matmuls", "ours / floor (aim <= 1.6)"],
          [[f"{ours_s:.3f}", f"{floor_s:.3f}", f"{floor_s / ours_s:.0%}",
            f"{ours_s / floor_s:.2f}"]])

    # 3. scaling with rows and width -------------------------------------------------------
    scale_epochs = 2
    rows = []
    for n in ([10_000, 50_000] if quick else [10_000, 100_000, 1_000_000]):
        Xn, yn = make_data(n)
        runs = {"ours": fit_ours}
        if n <= 100_000:
            runs = {"sklearn": fit_sklearn_1thread, "ours": fit_ours}
        r = interleaved(runs, Xn, yn, (64, 64), scale_epochs, 1 if n > 100_000 else repeats)
        ours_epoch = r["ours"][0] / scale_epochs
        ratio = f"{r['sklearn'][0] / r['ours'][0]:.2f}x" if "sklearn" in r else "(not run)"
        rows.append([f"{n:,}", f"{ours_epoch:.3f}", f"{ours_epoch / n * 1e6:.2f}", ratio])
    table(f"Scaling with rows (hidden (64, 64), {scale_epochs} epochs; sklearn with 1 thread)",
          ["rows", "ours s/epoch", "ours us/row", "speed-up vs sklearn"], rows)

    rows = []
    n_width = 20_000 if quick else 100_000
    Xw, yw = X[:n_width], y[:n_width]
    for width in (16, 64, 256):
        r = interleaved({"sklearn": fit_sklearn_1thread, "ours": fit_ours}, Xw, yw, (width, width),
                        scale_epochs, repeats if width < 256 else max(1, repeats // 2))
        rows.append([f"({width}, {width})", f"{r['ours'][0] / scale_epochs:.3f}",
                     f"{r['sklearn'][0] / scale_epochs:.3f}",
                     f"{r['sklearn'][0] / r['ours'][0]:.2f}x"])
    table(f"Scaling with width ({n_width:,} rows, {scale_epochs} epochs; sklearn with 1 thread)",
          ["hidden", "ours s/epoch", "sklearn s/epoch", "speed-up"], rows)

    # 4. memory at 1M rows -----------------------------------------------------------------
    mem = memory(1_000_000)
    mb = 1024**2
    budget = 2 * mem["input"] + 100 * mb
    grown = mem["rss_peak"] - mem["rss_base"]
    rows = [["tracemalloc peak (all NumPy buffers, incl. X)", f"{mem['traced_peak'] / mb:.0f}",
             f"{budget / mb:.0f}", "PASS" if mem["traced_peak"] <= budget else "FAIL"],
            ["process peak RSS - RSS after imports", f"{grown / mb:.0f}", f"{budget / mb:.0f}",
             "PASS" if grown <= budget else "FAIL"],
            ["process peak RSS (incl. interpreter, numpy, sklearn)",
             f"{mem['rss_peak'] / mb:.0f}", "", ""]]
    table(f"Memory: fit on 1,000,000 x 32 float64 (input {mem['input'] / mb:.0f} MB; budget "
          "2 x input + 100 MB)", ["measure", "MB", "budget MB", ""], rows)

    # 5. numeric encodings and the training recipe, per epoch ---------------------------------
    rows = encoding_costs(20_000 if quick else 50_000, repeats)
    table("Cost per epoch of each encoding / recipe option (ours, hidden (128, 128) relu, "
          "batch 256; 8 continuous + 24 binary columns)",
          ["option", "s/epoch", "vs plain", "setup s (fit once)"], rows)

    diagnostics_table(quick, repeats)
    return 0


def encoding_costs(n: int, repeats: int) -> list[list[str]]:
    """Median seconds per epoch of the plain network and of each option, interleaved."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal((n, 8)), rng.integers(0, 2, (n, 24))])
    y = ((X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]) + X[:, 8]) > 0.5).astype(np.int64)
    options = {
        "plain": {},
        "ple (tree bins, 16)": {"numeric_encoding": "ple", "n_bins": 16},
        "ple (quantile bins, 16)": {"numeric_encoding": "ple", "n_bins": 16,
                                    "binning": "quantile"},
        "periodic (k 16, d 16)": {"numeric_encoding": "periodic"},
        "dropout 0.2": {"dropout": 0.2},
        "AdamW + cosine schedule": {"weight_decay": 0.01, "lr_schedule": "cosine",
                                    "warmup_epochs": 1},
    }
    base = dict(hidden_layer_sizes=(128, 128), activation="relu", batch_size=256, tol=0.0,
                n_iter_no_change=10_000, random_state=0)

    def fit_seconds(name: str, epochs: int) -> float:
        t0 = time.perf_counter()
        SigmoidNetworkClassifier(**base, **options[name], max_iter=epochs).fit(X, y)
        return time.perf_counter() - t0

    # per epoch: (4 epochs - 1 epoch) / 3, so fitting the encoder once is not counted
    per_epoch: dict[str, list[float]] = {k: [] for k in options}
    setup: dict[str, list[float]] = {k: [] for k in options}
    for r in range(repeats):
        names = list(options)[r % len(options):] + list(options)[:r % len(options)]
        for name in names:
            one, four = fit_seconds(name, 1), fit_seconds(name, 4)
            per_epoch[name].append((four - one) / 3)
            setup[name].append(max(0.0, one - (four - one) / 3))
    plain = statistics.median(per_epoch["plain"])
    return [[name, f"{statistics.median(t):.3f}", f"{statistics.median(t) / plain:.2f}x",
             f"{statistics.median(setup[name]):.3f}"] for name, t in per_epoch.items()]


def diagnostics_table(quick: bool, repeats: int) -> None:
    # 6. the per-layer health (tune / train's curves) ------------------------------------
    table("Per-layer health (saturation, grad/weight norms, update ratio) per epoch: a forward "
          "+ backward on 1 in 8 held-out rows (<= 256); batch 128, eval_set as in cross_validate",
          ["train rows", "hidden", "epoch ms (without)", "health ms", "extra"],
          diagnostics_cost(quick, max(repeats, 3)))
    print("target: extra < 5% of an epoch (on by default in tune and train)")


if __name__ == "__main__":
    sys.exit(main())
