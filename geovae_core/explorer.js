// geovae's latent explorer (N11): a 2-D pad over a model's encoded test means; the point under the
// cursor (or dragged, or moved with the arrow keys) is decoded to a 28 x 28 image in the page, by the
// decoder's two layers: x = sigmoid(W2 tanh(W1 z + b1) + b2). Weights arrive as float16, base64.
// No server, no network: it runs from file:// and offline. window.geovaeExplorer.decode(name, z1, z2)
// returns the 784 pixels, for the browser test.
(function () {
  function halves(b64) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const h = new Uint16Array(bytes.buffer);
    const out = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) {
      const s = h[i] & 0x8000 ? -1 : 1, e = (h[i] >> 10) & 0x1f, f = h[i] & 0x3ff;
      out[i] = e === 0 ? s * f * Math.pow(2, -24) : e === 31 ? s * Infinity : s * (1 + f / 1024) * Math.pow(2, e - 15);
    }
    return out;
  }
  function decoder(m) {
    const W1 = halves(m.w1), b1 = halves(m.b1), W2 = halves(m.w2), b2 = halves(m.b2), H = b1.length, D = b2.length;
    return function (z1, z2) {
      const h = new Float32Array(H), x = new Float32Array(D);
      for (let j = 0; j < H; j++) h[j] = Math.tanh(W1[2 * j] * z1 + W1[2 * j + 1] * z2 + b1[j]);
      for (let i = 0; i < D; i++) {
        let a = b2[i];
        for (let j = 0; j < H; j++) a += W2[i * H + j] * h[j];
        x[i] = 1 / (1 + Math.exp(-a));
      }
      return x;
    };
  }
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  window.geovaeExplorer = window.geovaeExplorer || { decoders: {}, decode: (n, a, b) => Array.from(window.geovaeExplorer.decoders[n](a, b)) };
  window.geovaeExplorerStart = function (root, data) {
    for (const m of data.models) {
      const decode = decoder(m);
      window.geovaeExplorer.decoders[m.name] = decode;
      const panel = document.createElement("div");
      panel.className = "geovae-explorer-panel";
      panel.innerHTML = `<div class="geovae-explorer-title">${m.name}, z = 2</div>`;
      const pad = document.createElement("canvas"), view = document.createElement("canvas"), where = document.createElement("div");
      pad.width = pad.height = 300; view.width = view.height = 140;
      pad.tabIndex = 0; pad.setAttribute("aria-label", `${m.name} latent pad: move, drag or use the arrow keys`);
      pad.dataset.model = m.name; view.dataset.model = m.name;
      where.className = "geovae-explorer-where";
      panel.append(pad, view, where);
      root.append(panel);
      const [x0, x1, y0, y1] = m.bounds, codes = halves(m.codes), labels = m.labels;
      const toZ = (px, py) => [x0 + (px / pad.width) * (x1 - x0), y1 - (py / pad.height) * (y1 - y0)];
      const toPx = (z1, z2) => [((z1 - x0) / (x1 - x0)) * pad.width, ((y1 - z2) / (y1 - y0)) * pad.height];
      let z = [(x0 + x1) / 2, (y0 + y1) / 2];
      const ctx = pad.getContext("2d"), out = view.getContext("2d");
      function draw() {
        ctx.clearRect(0, 0, pad.width, pad.height);
        for (let i = 0; i < labels.length; i++) {
          const [px, py] = toPx(codes[2 * i], codes[2 * i + 1]);
          ctx.fillStyle = COLOURS[labels[i]];
          ctx.fillRect(px - 1, py - 1, 2, 2);
        }
        const [px, py] = toPx(z[0], z[1]);
        ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
        const x = decode(z[0], z[1]), img = out.createImageData(28, 28);
        for (let i = 0; i < 784; i++) {
          const v = Math.round(255 * x[i]);
          img.data.set([v, v, v, 255], 4 * i);
        }
        const small = document.createElement("canvas");
        small.width = small.height = 28; small.getContext("2d").putImageData(img, 0, 0);
        out.imageSmoothingEnabled = false;
        out.drawImage(small, 0, 0, view.width, view.height);
        where.textContent = `z = (${z[0].toFixed(2)}, ${z[1].toFixed(2)})`;
      }
      const move = (e) => { const r = pad.getBoundingClientRect(); z = toZ(e.clientX - r.left, e.clientY - r.top); draw(); };
      pad.addEventListener("pointermove", move);
      pad.addEventListener("pointerdown", (e) => { pad.focus(); move(e); });
      pad.addEventListener("keydown", (e) => {
        const step = (x1 - x0) / 50, moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
        if (moves[e.key]) { z = [z[0] + moves[e.key][0], z[1] + moves[e.key][1]]; draw(); e.preventDefault(); }
      });
      draw();
    }
    const legend = document.createElement("div");
    legend.className = "geovae-explorer-legend";
    legend.innerHTML = "digit: " + COLOURS.map((c, k) => `<span style="color:${c}">&#9632; ${k}</span>`).join(" ");
    root.append(legend);
  };
})();
