"""Rebuild ``basemap.geojson`` (country outlines of the Arabic-speaking region) from world-atlas.

The app's map must work offline, and Plotly's geo base layers are fetched from a CDN at draw time. So the
home-page map switches those layers off and draws the countries itself from this small inline GeoJSON.

Source: the npm package ``world-atlas`` 2.0.2 (ISC licence, Mike Bostock), ``countries-110m.json``, itself
made from Natural Earth 1:110m admin-0 countries (public domain). To rebuild::

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python explorer/ui/assets/build_basemap.py package/countries-110m.json

Only countries whose bounding box meets BBOX are kept, coordinates are rounded to 0.01 degrees.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BBOX = (-20.0, 5.0, 65.0, 45.0)  # lon_min, lat_min, lon_max, lat_max


def decode_arcs(topo: dict) -> list[list[list[float]]]:
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append([round(x * sx + tx, 2), round(y * sy + ty, 2)])
        out.append(pts)
    return out


def ring(arcs: list, idx: list[int]) -> list[list[float]]:
    pts: list[list[float]] = []
    for i in idx:
        a = arcs[i] if i >= 0 else arcs[~i][::-1]
        pts.extend(a if not pts else a[1:])
    return pts


def main(src: str) -> None:
    topo = json.loads(Path(src).read_text())
    arcs = decode_arcs(topo)
    feats = []
    for g in topo["objects"]["countries"]["geometries"]:
        if g.get("type") == "Polygon":
            polys = [[ring(arcs, r) for r in g["arcs"]]]
        elif g.get("type") == "MultiPolygon":
            polys = [[ring(arcs, r) for r in p] for p in g["arcs"]]
        else:
            continue
        xs = [p[0] for poly in polys for r in poly for p in r]
        ys = [p[1] for poly in polys for r in poly for p in r]
        if max(xs) < BBOX[0] or min(xs) > BBOX[2] or max(ys) < BBOX[1] or min(ys) > BBOX[3]:
            continue
        feats.append({"type": "Feature", "id": g["properties"]["name"], "properties": {"name": g["properties"]["name"]},
                      "geometry": {"type": "MultiPolygon", "coordinates": polys}})
    out = {"type": "FeatureCollection",
           "attribution": "Natural Earth 1:110m admin-0 countries (public domain), via world-atlas 2.0.2 "
                          "(ISC licence, Copyright 2013-2019 Michael Bostock)",
           "features": feats}
    dest = Path(__file__).with_name("basemap.geojson")
    dest.write_text(json.dumps(out, separators=(",", ":"), ensure_ascii=False))
    print(f"{dest}: {len(feats)} countries, {dest.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
