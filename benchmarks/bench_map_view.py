"""Frame time of the map of the sounds (bst_gui.map_view.MapView) at 35k points, offscreen.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_map_view.py [--n 35000] [--frames 60]

Each frame changes the view (alternately a pan step and a zoom step, as a drag or the wheel does)
and repaints the plot synchronously (``viewport().repaint()``); the time of that call is the frame
time. Also: building the map, recolouring all points (truth → prediction), ringing 1,000 selected
points, and a 200-vertex lasso around the middle of the map. Points are in 23 class colours, laid out in
23 clusters like a UMAP map. The goal (issue 9): pan/zoom under 50 ms per frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtWidgets import QApplication

from bst_core.taxonomy import CLASS_KEYS


def _ms(seconds: list[float]) -> str:
    values = np.asarray(seconds) * 1000
    return f"median {np.median(values):.1f} ms, p95 {np.percentile(values, 95):.1f} ms, max {values.max():.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=35_000)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="900x700", help="plot widget size WxH")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from bst_gui import style
    from bst_gui.map_view import MapView

    style.apply(app)
    rng = np.random.default_rng(0)
    classes = rng.integers(0, len(CLASS_KEYS), args.n)
    centres = rng.normal(scale=8.0, size=(len(CLASS_KEYS), 2))
    xy = (centres[classes] + rng.normal(size=(args.n, 2))).astype(np.float32)
    ids = [str(i) for i in range(args.n)]
    truth = [CLASS_KEYS[c] for c in classes]
    prediction = [CLASS_KEYS[(c + (rng.random() < 0.3)) % len(CLASS_KEYS)] for c in classes]

    view = MapView()
    width, height = (int(v) for v in args.size.split("x"))
    view.resize(width, height)
    view.show()
    app.processEvents()
    start = time.perf_counter()
    view.set_map(ids, xy, "umap", truth)
    view.box.autoRange(padding=0.04)
    view.plot.viewport().repaint()
    build = time.perf_counter() - start
    for _ in range(3):
        app.processEvents()

    box = view.box
    frames = []
    for k in range(args.frames):
        t = time.perf_counter()
        if k % 2:
            box.translateBy(x=0.4, y=0.2)
        else:
            box.scaleBy(s=(0.96, 0.96) if (k // 2) % 20 < 10 else (1.04, 1.04))
        view.plot.viewport().repaint()
        frames.append(time.perf_counter() - t)

    t = time.perf_counter()
    view.set_classes(prediction)
    view.plot.viewport().repaint()
    recolour = time.perf_counter() - t

    chosen = ids[:1000]
    t = time.perf_counter()
    view.highlight(chosen, chosen[0])
    view.plot.viewport().repaint()
    highlight = time.perf_counter() - t

    low, high = np.percentile(xy, 25, axis=0), np.percentile(xy, 75, axis=0)
    circle = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    polygon = np.column_stack([(low[0] + high[0]) / 2 + (high[0] - low[0]) / 2 * np.cos(circle),
                               (low[1] + high[1]) / 2 + (high[1] - low[1]) / 2 * np.sin(circle)])
    t = time.perf_counter()
    inside = view.ids_in(polygon)
    lasso = time.perf_counter() - t

    print(f"map view, {args.n:,} points, {width}x{height} px, offscreen raster")
    print(f"  build + first paint: {build * 1000:.0f} ms")
    print(f"  pan/zoom frame ({args.frames} frames): {_ms(frames)}")
    print(f"  recolour all points + paint: {recolour * 1000:.0f} ms")
    print(f"  ring 1,000 selected points + paint: {highlight * 1000:.0f} ms")
    print(f"  lasso of a 200-vertex polygon ({len(inside):,} points inside): {lasso * 1000:.1f} ms")
    view.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
