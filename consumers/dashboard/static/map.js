// The map's projection and furniture: Web Mercator (the projection of XYZ tiles), a view
// (centre and zoom), optional raster tiles, a lat/lon grid and a scale bar.
// Geometry in metres (ellipses) is computed by the server with heimdall.core.geodesy; the
// page only projects lat/lon.
"use strict";

const HMap = (() => {
  const R_EARTH_M = 6378137; // WGS84 semi-major axis: Web Mercator's sphere
  const TILE_PX = 256;

  // lon/lat (degrees) -> world coordinates in [0, 1) (x east, y south)
  function world(lat, lon) {
    const phi = Math.max(Math.min(lat, 85.05112878), -85.05112878) * Math.PI / 180;
    return [(lon + 180) / 360, 0.5 - Math.log(Math.tan(Math.PI / 4 + phi / 2)) / (2 * Math.PI)];
  }
  function unworld(x, y) {
    const lon = x * 360 - 180;
    const lat = (2 * Math.atan(Math.exp((0.5 - y) * 2 * Math.PI)) - Math.PI / 2) * 180 / Math.PI;
    return [lat, lon];
  }

  class View {
    constructor() { this.cx = 0.5; this.cy = 0.5; this.z = 2; this.w = 800; this.h = 600; }
    get scale() { return TILE_PX * Math.pow(2, this.z); }
    px(lat, lon) {
      const [x, y] = world(lat, lon);
      return [(x - this.cx) * this.scale + this.w / 2, (y - this.cy) * this.scale + this.h / 2];
    }
    latlon(px, py) {
      return unworld(this.cx + (px - this.w / 2) / this.scale, this.cy + (py - this.h / 2) / this.scale);
    }
    // metres per pixel at the view's centre latitude
    metresPerPx() {
      const [lat] = unworld(this.cx, this.cy);
      return Math.cos(lat * Math.PI / 180) * 2 * Math.PI * R_EARTH_M / this.scale;
    }
    fit(points, marginPx = 60) {
      if (!points.length) return false;
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      for (const [lat, lon] of points) {
        const [x, y] = world(lat, lon);
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
      this.cx = (x0 + x1) / 2; this.cy = (y0 + y1) / 2;
      const span = Math.max((x1 - x0) / Math.max(this.w - 2 * marginPx, 50),
                            (y1 - y0) / Math.max(this.h - 2 * marginPx, 50), 1e-9);
      this.z = Math.min(Math.max(Math.log2(1 / (span * TILE_PX)), 1), 18);
      return true;
    }
    zoomAt(px, py, dz) {
      const wx = this.cx + (px - this.w / 2) / this.scale, wy = this.cy + (py - this.h / 2) / this.scale;
      this.z = Math.min(Math.max(this.z + dz, 1), 19);
      this.cx = wx - (px - this.w / 2) / this.scale; this.cy = wy - (py - this.h / 2) / this.scale;
    }
    pan(dx, dy) { this.cx -= dx / this.scale; this.cy -= dy / this.scale; }
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // <image> elements of the XYZ tiles covering the view ({z}, {x}, {y} in the template)
  function tiles(view, template) {
    if (!template) return "";
    const zi = Math.max(0, Math.min(19, Math.round(view.z)));
    const n = Math.pow(2, zi), size = view.scale / n;
    const [ax, ay] = [view.cx - view.w / 2 / view.scale, view.cy - view.h / 2 / view.scale];
    const tx0 = Math.floor(ax * n), ty0 = Math.max(0, Math.floor(ay * n));
    const tx1 = Math.floor((ax + view.w / view.scale) * n), ty1 = Math.min(n - 1, Math.floor((ay + view.h / view.scale) * n));
    let out = "";
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const wx = ((tx % n) + n) % n;
        const href = template.replace("{z}", zi).replace("{x}", wx).replace("{y}", ty);
        const px = (tx / n - view.cx) * view.scale + view.w / 2, py = (ty / n - view.cy) * view.scale + view.h / 2;
        out += `<image href="${esc(href)}" x="${px.toFixed(1)}" y="${py.toFixed(1)}" width="${(size + 0.5).toFixed(1)}" height="${(size + 0.5).toFixed(1)}"/>`;
      }
    }
    return `<g class="tiles">${out}</g>`;
  }

  function niceStep(span, target) {
    const raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }
  function fmtDeg(v, step, pos, neg) {
    const d = Math.max(0, -Math.floor(Math.log10(step)));
    return `${Math.abs(v).toFixed(d)}°${v >= 0 ? pos : neg}`;
  }

  // lat/lon graticule with labels on the left and bottom edges
  function grid(view) {
    const [lat1, lon0] = view.latlon(0, 0), [lat0, lon1] = view.latlon(view.w, view.h);
    const sLon = niceStep(lon1 - lon0, 6), sLat = niceStep(lat1 - lat0, 5);
    let out = "";
    for (let lon = Math.ceil(lon0 / sLon) * sLon; lon <= lon1; lon += sLon) {
      const [x] = view.px(lat0, lon);
      out += `<line x1="${x.toFixed(1)}" y1="0" x2="${x.toFixed(1)}" y2="${view.h}"/>`;
      out += `<text x="${(x + 2).toFixed(1)}" y="${view.h - 4}">${fmtDeg(lon, sLon, "E", "W")}</text>`;
    }
    for (let lat = Math.ceil(lat0 / sLat) * sLat; lat <= lat1; lat += sLat) {
      const [, y] = view.px(lat, lon0);
      out += `<line x1="0" y1="${y.toFixed(1)}" x2="${view.w}" y2="${y.toFixed(1)}"/>`;
      out += `<text x="3" y="${(y - 2).toFixed(1)}">${fmtDeg(lat, sLat, "N", "S")}</text>`;
    }
    return `<g class="grid">${out}</g>`;
  }

  // a scale bar of a round length, at most ~140 px, bottom right
  function scaleBar(view) {
    const mpp = view.metresPerPx(), most = 140 * mpp, p = Math.pow(10, Math.floor(Math.log10(most)));
    const len = [5, 2, 1].map(m => m * p).find(v => v <= most) || p;
    const px = len / mpp, x1 = view.w - 16, x0 = x1 - px, y = view.h - 22;
    const label = len >= 1000 ? `${len / 1000} km` : `${len} m`;
    return `<g class="scale"><line x1="${x0.toFixed(1)}" y1="${y}" x2="${x1}" y2="${y}"/>` +
      `<line x1="${x0.toFixed(1)}" y1="${y - 4}" x2="${x0.toFixed(1)}" y2="${y + 4}"/>` +
      `<line x1="${x1}" y1="${y - 4}" x2="${x1}" y2="${y + 4}"/>` +
      `<text x="${(x0 + px / 2 - 14).toFixed(1)}" y="${y - 6}">${label}</text></g>`;
  }

  return { View, tiles, grid, scaleBar, esc, world };
})();
