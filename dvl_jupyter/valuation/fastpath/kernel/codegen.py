"""Code generation: the C source of the kernel for one :class:`~.plan.Plan`.

Every size is a literal in the source, so the compiler unrolls and vectorises the loops; the
16 samples of a group sit in the lanes of one vector (see the package docstring). The fixed
parts of the source (prelude, loss, optimizer, driver) are in ``templates``. The source is part
of the compiled-kernel cache key (``build``), so the same plan must always give the same bytes.
"""

from __future__ import annotations

import copy

import numpy as np

from .plan import Layer, Plan
from .templates import _DRIVER, _DROPOUT_RNG, _PRELUDE, LANES, dropout_driver

_ELEMENTWISE = ("relu", "leaky_relu", "tanh", "sigmoid", "softmax", "log_softmax")
#: Layers whose backward pass reads their own output (so the next layer must not overwrite it).
_NEEDS_OUTPUT = (*_ELEMENTWISE, "maxpool")


def _tiles(n: int, t: int = 8) -> list[tuple[int, int]]:
    """(start, size) tiles of at most ``t``: accumulators kept in registers, not spilled."""
    return [(s, min(t, n - s)) for s in range(0, n, t)]


class _CodeGen:
    """Builds the C source for one plan. Sizes are literals so loops unroll and vectorise."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lines: list[str] = []
        self.tables: list[str] = []
        # buffers: activation i (0 = input) lives in buffer bufs[i]; element-wise layers work
        # in place unless the layer that wrote their input reads its own output in backward.
        # Flatten only renames its input's buffer, so that layer is the one before it.
        layers = plan.layers
        self.bufs = [0]
        sizes = {0: int(np.prod(plan.in_shape))}
        nb = 1
        for i, ly in enumerate(layers):
            j = i - 1
            while j >= 0 and layers[j].kind == "flatten":
                j -= 1
            prev_kind = layers[j].kind if j >= 0 else "input"
            inplace = ly.kind == "flatten" or (
                ly.kind in (*_ELEMENTWISE, "dropout") and prev_kind not in _NEEDS_OUTPUT
            )
            if inplace:
                self.bufs.append(self.bufs[-1])
            else:
                self.bufs.append(nb)
                nb += 1
            b = self.bufs[-1]
            sizes[b] = max(sizes.get(b, 0), ly.out_size)
        # scratch: for every convolution a zero-bordered copy of its input (so no tap needs a
        # bounds check) and, for stride 1, a zero-bordered copy of its output gradient. The
        # borders are zeroed once when the buffers are allocated and never written again.
        for i, ly in enumerate(layers):
            if ly.kind != "conv":
                continue
            a = ly.attrs
            a["hp"] = max(a["h"] + a["pt"], (a["ho"] - 1) * a["sh"] + (a["kh"] - 1) * a["dh"] + 1)
            a["wp"] = max(a["w"] + a["pl"], (a["wo"] - 1) * a["sw"] + (a["kw"] - 1) * a["dw"] + 1)
            sizes[nb] = a["cin"] * a["hp"] * a["wp"]
            a["ps"] = nb
            nb += 1
            if i > 0 and a["sh"] == 1 and a["sw"] == 1:
                a["gy0"] = max(0, (a["kh"] - 1) * a["dh"] - a["pt"])
                a["gx0"] = max(0, (a["kw"] - 1) * a["dw"] - a["pl"])
                a["gh"] = max(a["h"] + a["pt"] + a["gy0"], a["ho"] + a["gy0"])
                a["gw"] = max(a["w"] + a["pl"] + a["gx0"], a["wo"] + a["gx0"])
                sizes[nb] = a["cout"] * a["gh"] * a["gw"]
                a["pg"] = nb
                nb += 1
        # dropout: the mask (0 or 1/(1-p) per element and lane) drawn in training, kept for
        # backward
        for ly in layers:
            if ly.kind == "dropout":
                sizes[nb] = ly.out_size
                ly.attrs["mb"] = nb
                nb += 1
        self.nbuf = nb
        self.buf_sizes = [sizes[b] for b in range(nb)]
        self.gmax = max([int(np.prod(plan.in_shape))] + [ly.out_size for ly in layers])

    def e(self, s: str) -> None:
        self.lines.append(s)

    # -- forward ----------------------------------------------------------------------------
    def fwd(self, ly: Layer, src: str, dst: str, train: bool = False) -> None:
        """Forward of one layer; ``train`` only matters for dropout (identity otherwise)."""
        e, a = self.e, ly.attrs
        if ly.kind == "conv":
            ci, h, w, co = a["cin"], a["h"], a["w"], a["cout"]
            kh, kw, sh, sw, dh, dw = a["kh"], a["kw"], a["sh"], a["sw"], a["dh"], a["dw"]
            pt, pl, ho, wo, hp, wp = a["pt"], a["pl"], a["ho"], a["wo"], a["hp"], a["wp"]
            wsz = ci * kh * kw
            ps = f"A[{a['ps']}]"
            e(f"for (int c=0; c<{ci}; c++) for (int y=0; y<{h}; y++) for (int x=0; x<{w}; x++)")
            e(f"  {ps}[(c*{hp}+y+{pt})*{wp}+x+{pl}] = {src}[(c*{h}+y)*{w}+x];")
            for o0, ot in _tiles(co):
                bias = f"p[{ly.b_off}+{o0}+o]" if ly.b_off >= 0 else "0.0f"
                e(f"for (int oy=0; oy<{ho}; oy++) for (int ox=0; ox<{wo}; ox++) {{")
                e(f"  vf acc[{ot}];")
                e(f"  for (int o=0; o<{ot}; o++) acc[o] = (vf){{}} + {bias};")
                e(f"  const vf* b = {ps} + oy*{sh * wp} + ox*{sw};")
                e(f"  for (int c=0; c<{ci}; c++) for (int ky=0; ky<{kh}; ky++)"
                  f" for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    vf v = b[(c*{hp}+ky*{dh})*{wp}+kx*{dw}];")
                e(f"    const float* wp = p + {ly.w_off} + {o0 * wsz} + (c*{kh}+ky)*{kw}+kx;")
                e(f"    UNROLL for (int o=0; o<{ot}; o++) acc[o] += v * wp[o*{wsz}];")
                e("  }")
                e(f"  for (int o=0; o<{ot}; o++) {dst}[(({o0}+o)*{ho}+oy)*{wo}+ox] = acc[o];")
                e("}")
        elif ly.kind == "linear":
            fi, fo = a["fin"], a["fout"]
            for o0, ot in _tiles(fo, 16):
                bias = f"p[{ly.b_off}+{o0}+o]" if ly.b_off >= 0 else "0.0f"
                e(f"{{ vf acc[{ot}];")
                e(f"  for (int o=0; o<{ot}; o++) acc[o] = (vf){{}} + {bias};")
                e(f"  for (int i=0; i<{fi}; i++) {{ vf v = {src}[i];")
                e(f"    const float* wp = p + {ly.w_off} + {o0 * fi} + i;")
                e(f"    UNROLL for (int o=0; o<{ot}; o++) acc[o] += v * wp[o*{fi}]; }}")
                e(f"  for (int o=0; o<{ot}; o++) {dst}[{o0}+o] = acc[o]; }}")
        elif ly.kind == "relu":
            e(f"for (int i=0; i<{ly.out_size}; i++) {{ vf v = {src}[i];"
              f" {dst}[i] = sel(v > 0, v, (vf){{}}); }}")
        elif ly.kind == "leaky_relu":
            e(f"for (int i=0; i<{ly.out_size}; i++) {{ vf v = {src}[i];"
              f" {dst}[i] = sel(v > 0, v, v * {a['slope']!r}f); }}")
        elif ly.kind in ("tanh", "sigmoid"):
            fn = "tanhf(x[j])" if ly.kind == "tanh" else "1.0f / (1.0f + expf(-x[j]))"
            e(f"{{ const float* x = (const float*){src}; float* y = (float*){dst};")
            e(f"  for (int j=0; j<{ly.out_size}*V; j++) y[j] = {fn}; }}")
        elif ly.kind in ("maxpool", "avgpool"):
            c, h, w, kh, kw = a["c"], a["h"], a["w"], a["kh"], a["kw"]
            sh, sw, ho, wo = a["sh"], a["sw"], a["ho"], a["wo"]
            e(f"for (int c=0; c<{c}; c++) for (int oy=0; oy<{ho}; oy++)"
              f" for (int ox=0; ox<{wo}; ox++) {{")
            e(f"  const vf* b = {src} + (c*{h}+oy*{sh})*{w}+ox*{sw};")
            if ly.kind == "maxpool":  # first maximum wins, as in torch's CPU kernel
                e("  vf m = b[0];")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    vf v = b[ky*{w}+kx]; m = sel(v > m, v, m); }}")
                e(f"  {dst}[(c*{ho}+oy)*{wo}+ox] = m; }}")
            else:
                e("  vf s = (vf){};")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++)"
                  f" s += b[ky*{w}+kx];")
                e(f"  {dst}[(c*{ho}+oy)*{wo}+ox] = s / {float(kh * kw)!r}f; }}")
        elif ly.kind in ("softmax", "log_softmax"):
            n = ly.out_size
            e(f"{{ const float* x = (const float*){src}; float* y = (float*){dst};")
            e("  for (int l=0; l<V; l++) {")
            e(f"    float m = x[l]; for (int i=1; i<{n}; i++) m = x[i*V+l] > m ? x[i*V+l] : m;")
            e(f"    float s = 0; for (int i=0; i<{n}; i++) s += expf(x[i*V+l] - m);")
            if ly.kind == "softmax":
                e(f"    for (int i=0; i<{n}; i++) y[i*V+l] = expf(x[i*V+l] - m) / s;")
            else:
                e(f"    float ls = logf(s); for (int i=0; i<{n}; i++)"
                  f" y[i*V+l] = x[i*V+l] - m - ls;")
            e("  } }")
        elif ly.kind == "dropout":
            n = ly.out_size
            if train:
                p = a["p"]
                thr = min(round(p * 2.0**32), 2**32)
                scale = 0.0 if p >= 1.0 else float(np.float32(1.0) / np.float32(1.0 - p))
                if "check_scale" in a:  # the self-check's variant: keep all, scale by this
                    thr, scale = 0, float(a["check_scale"])
                m = f"A[{a['mb']}]"
                e(f"drop_mask({m}, {n}, {thr}ull, {scale!r}f, rng);")
                e(f"for (int i=0; i<{n}; i++) {dst}[i] = {src}[i] * {m}[i];")
            elif src != dst:
                e(f"memcpy({dst}, {src}, sizeof(vf)*{n});")
        elif ly.kind == "flatten":
            pass
        else:  # pragma: no cover - plan_module only emits the kinds above
            raise AssertionError(ly.kind)

    # -- backward ---------------------------------------------------------------------------
    def bwd(self, ly: Layer, src: str, dst: str, gout: str, gin: str, need_gin: bool) -> None:
        """Accumulate parameter gradients into G; write dL/d(input) to ``gin`` if needed."""
        e, a = self.e, ly.attrs
        if ly.kind == "conv":
            self.conv_weight_grad(ly, gout)
            if need_gin:
                if "pg" in a:
                    self.conv_input_grad_padded(ly, gout, gin)
                else:
                    self.conv_input_grad_strided(ly, gout, gin)
        elif ly.kind == "linear":
            fi, fo = a["fin"], a["fout"]
            e(f"for (int o=0; o<{fo}; o++) {{ vf g = {gout}[o];")
            if ly.b_off >= 0:
                e(f"  G[{ly.b_off}+o] += g;")
            e(f"  vf* gp = G + {ly.w_off} + o*{fi};")
            e(f"  for (int i=0; i<{fi}; i++) gp[i] += g * {src}[i]; }}")
            if need_gin:
                e(f"for (int i=0; i<{fi}; i++) {gin}[i] = (vf){{}};")
                e(f"for (int o=0; o<{fo}; o++) {{ vf g = {gout}[o];"
                  f" const float* wp = p + {ly.w_off} + o*{fi};")
                e(f"  for (int i=0; i<{fi}; i++) {gin}[i] += g * wp[i]; }}")
        elif not need_gin:
            return  # a parameter-free first layer: nothing to propagate
        elif ly.kind == "relu":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = sel({dst}[i] > 0, {gout}[i], (vf){{}});")
        elif ly.kind == "leaky_relu":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = sel({dst}[i] > 0, {gout}[i], {gout}[i] * {a['slope']!r}f);")
        elif ly.kind == "tanh":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = {gout}[i] * (1.0f - {dst}[i] * {dst}[i]);")
        elif ly.kind == "sigmoid":
            e(f"for (int i=0; i<{ly.out_size}; i++)"
              f" {gin}[i] = {gout}[i] * {dst}[i] * (1.0f - {dst}[i]);")
        elif ly.kind in ("maxpool", "avgpool"):
            c, h, w, kh, kw = a["c"], a["h"], a["w"], a["kh"], a["kw"]
            sh, sw, ho, wo = a["sh"], a["sw"], a["ho"], a["wo"]
            e(f"memset({gin}, 0, sizeof(vf)*{c * h * w});")
            e(f"for (int c=0; c<{c}; c++) for (int oy=0; oy<{ho}; oy++)"
              f" for (int ox=0; ox<{wo}; ox++) {{")
            e(f"  int base = (c*{h}+oy*{sh})*{w}+ox*{sw}; vf g = {gout}[(c*{ho}+oy)*{wo}+ox];")
            if ly.kind == "maxpool":  # the gradient goes to the first maximum only
                e(f"  vf m = {dst}[(c*{ho}+oy)*{wo}+ox]; vi taken = (vi){{}};")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++) {{")
                e(f"    int j = base + ky*{w}+kx; vi hit = ({src}[j] == m) & ~taken;")
                e(f"    taken |= hit; {gin}[j] += sel(hit, g, (vf){{}}); }} }}")
            else:
                e(f"  g = g / {float(kh * kw)!r}f;")
                e(f"  for (int ky=0; ky<{kh}; ky++) for (int kx=0; kx<{kw}; kx++)"
                  f" {gin}[base + ky*{w}+kx] += g; }}")
        elif ly.kind == "softmax":
            n = ly.out_size
            e(f"{{ vf s = (vf){{}}; for (int i=0; i<{n}; i++) s += {gout}[i] * {dst}[i];")
            e(f"  for (int i=0; i<{n}; i++) {gin}[i] = {dst}[i] * ({gout}[i] - s); }}")
        elif ly.kind == "log_softmax":
            n = ly.out_size
            e(f"{{ vf s = (vf){{}}; for (int i=0; i<{n}; i++) s += {gout}[i];")
            e(f"  const float* y = (const float*){dst}; float* gi = (float*){gin};")
            e(f"  const float* go = (const float*){gout};")
            e(f"  for (int i=0; i<{n}; i++) for (int l=0; l<V; l++)"
              f" gi[i*V+l] = go[i*V+l] - expf(y[i*V+l]) * s[l]; }}")
        elif ly.kind == "dropout":
            e(f"for (int i=0; i<{ly.out_size}; i++) {gin}[i] = {gout}[i] * A[{a['mb']}][i];")
        elif ly.kind == "flatten":
            if gin != gout:
                e(f"memcpy({gin}, {gout}, sizeof(vf)*{ly.out_size});")
        else:  # pragma: no cover
            raise AssertionError(ly.kind)

    def conv_weight_grad(self, ly: Layer, gout: str) -> None:
        """dW and db. Accumulators for a block of taps x output channels stay in registers
        over all output positions (instead of a load and store of G per multiply-add)."""
        e, a = self.e, ly.attrs
        ci, co, kh, kw = a["cin"], a["cout"], a["kh"], a["kw"]
        sh, sw, dh, dw = a["sh"], a["sw"], a["dh"], a["dw"]
        ho, wo, hp, wp = a["ho"], a["wo"], a["hp"], a["wp"]
        wsz = ci * kh * kw
        ps = f"A[{a['ps']}]"
        offs = [(c * hp + ky * dh) * wp + kx * dw
                for c in range(ci) for ky in range(kh) for kx in range(kw)]
        name = f"TAP{ly.w_off}"
        table = ", ".join(map(str, offs))
        self.tables.append(f"static const int {name}[{len(offs)}] = {{{table}}};")
        if ly.b_off >= 0:
            e(f"for (int o=0; o<{co}; o++) {{ vf s = (vf){{}};")
            e(f"  for (int q=0; q<{ho * wo}; q++) s += {gout}[o*{ho * wo}+q];")
            e(f"  G[{ly.b_off}+o] += s; }}")
        for o0, ot in _tiles(co):
            tb = max(1, 24 // ot)
            blocks = [(t0, min(tb, wsz - t0)) for t0 in range(0, wsz, tb)]
            full = [b for b in blocks if b[1] == tb]
            tail = [b for b in blocks if b[1] != tb]
            for start, count, nb in ((0, tb, len(full)), *[(t0, n, 1) for t0, n in tail]):
                if nb == 0:
                    continue
                e(f"for (int t0={start}; t0<{start + nb * count}; t0+={count}) {{")
                e(f"  vf acc[{ot}][{count}];")
                e(f"  for (int o=0; o<{ot}; o++) for (int t=0; t<{count}; t++)"
                  f" acc[o][t] = (vf){{}};")
                e(f"  for (int oy=0; oy<{ho}; oy++) for (int ox=0; ox<{wo}; ox++) {{")
                e(f"    const vf* b = {ps} + oy*{sh * wp} + ox*{sw};")
                e(f"    vf g[{ot}];")
                e(f"    for (int o=0; o<{ot}; o++) g[o] = {gout}[(({o0}+o)*{ho}+oy)*{wo}+ox];")
                e(f"    UNROLL for (int t=0; t<{count}; t++) {{ vf v = b[{name}[t0+t]];")
                e(f"      UNROLL for (int o=0; o<{ot}; o++) acc[o][t] += g[o] * v; }}")
                e("  }")
                e(f"  for (int o=0; o<{ot}; o++) for (int t=0; t<{count}; t++)"
                  f" G[{ly.w_off}+({o0}+o)*{wsz}+t0+t] += acc[o][t];")
                e("}")

    def conv_input_grad_padded(self, ly: Layer, gout: str, gin: str) -> None:
        """dL/d(input) for stride 1, as a correlation over a zero-bordered copy of gout."""
        e, a = self.e, ly.attrs
        ci, h, w, co, kh, kw = a["cin"], a["h"], a["w"], a["cout"], a["kh"], a["kw"]
        dh, dw, pt, pl, ho, wo = a["dh"], a["dw"], a["pt"], a["pl"], a["ho"], a["wo"]
        gh, gw, gy0, gx0 = a["gh"], a["gw"], a["gy0"], a["gx0"]
        pg = f"A[{a['pg']}]"
        e(f"for (int o=0; o<{co}; o++) for (int y=0; y<{ho}; y++) for (int x=0; x<{wo}; x++)")
        e(f"  {pg}[(o*{gh}+y+{gy0})*{gw}+x+{gx0}] = {gout}[(o*{ho}+y)*{wo}+x];")
        for c0, ct in _tiles(ci):
            e(f"for (int iy=0; iy<{h}; iy++) for (int ix=0; ix<{w}; ix++) {{")
            e(f"  vf acc[{ct}]; for (int c=0; c<{ct}; c++) acc[c] = (vf){{}};")
            e(f"  const vf* b = {pg} + (iy+{pt + gy0})*{gw} + ix+{pl + gx0};")
            e(f"  for (int o=0; o<{co}; o++) for (int ky=0; ky<{kh}; ky++)"
              f" for (int kx=0; kx<{kw}; kx++) {{")
            e(f"    vf g = b[(o*{gh}-ky*{dh})*{gw}-kx*{dw}];")
            e(f"    const float* wp = p + {ly.w_off} + o*{ci * kh * kw} + ({c0}*{kh}+ky)*{kw}+kx;")
            e(f"    UNROLL for (int c=0; c<{ct}; c++) acc[c] += g * wp[c*{kh * kw}];")
            e("  }")
            e(f"  for (int c=0; c<{ct}; c++) {gin}[(({c0}+c)*{h}+iy)*{w}+ix] = acc[c];")
            e("}")

    def conv_input_grad_strided(self, ly: Layer, gout: str, gin: str) -> None:
        """dL/d(input) for any stride: gather form with bounds and divisibility checks."""
        e, a = self.e, ly.attrs
        ci, h, w, co = a["cin"], a["h"], a["w"], a["cout"]
        kh, kw, sh, sw, dh, dw = a["kh"], a["kw"], a["sh"], a["sw"], a["dh"], a["dw"]
        pt, pl, ho, wo = a["pt"], a["pl"], a["ho"], a["wo"]
        wsz = ci * kh * kw
        for c0, ct in _tiles(ci):
            e(f"for (int iy=0; iy<{h}; iy++) for (int ix=0; ix<{w}; ix++) {{")
            e(f"  vf acc[{ct}]; for (int c=0; c<{ct}; c++) acc[c] = (vf){{}};")
            e(f"  for (int o=0; o<{co}; o++) for (int ky=0; ky<{kh}; ky++) {{")
            e(f"    int ty = iy + {pt} - ky*{dh}; if (ty < 0 || ty % {sh}) continue;")
            e(f"    int oy = ty / {sh}; if (oy >= {ho}) continue;")
            e(f"    for (int kx=0; kx<{kw}; kx++) {{")
            e(f"      int tx = ix + {pl} - kx*{dw}; if (tx < 0 || tx % {sw}) continue;")
            e(f"      int ox = tx / {sw}; if (ox >= {wo}) continue;")
            e(f"      vf g = {gout}[(o*{ho}+oy)*{wo}+ox];")
            e(f"      const float* wp = p + {ly.w_off} + o*{wsz} + ({c0}*{kh}+ky)*{kw}+kx;")
            e(f"      UNROLL for (int c=0; c<{ct}; c++) acc[c] += g * wp[c*{kh * kw}];")
            e("  }}")
            e(f"  for (int c=0; c<{ct}; c++) {gin}[(({c0}+c)*{h}+iy)*{w}+ix] = acc[c];")
            e("}")

    # -- whole source -------------------------------------------------------------------------
    def source(self) -> str:
        plan, e = self.plan, self.e
        layers = plan.layers
        n_in = int(np.prod(plan.in_shape))
        e(_PRELUDE.replace("@LANES@", str(LANES)))
        e(f"#define NP {plan.n_params}")
        e(f"#define NIN {n_in}")
        e(f"#define NOUT {plan.out_size}")
        e(f"#define NBUF {self.nbuf}")
        e(f"#define GMAX {self.gmax}")
        e(f"static const int BUF_SIZE[NBUF] = {{{', '.join(map(str, self.buf_sizes))}}};")
        e(f"#define OUTBUF {self.bufs[-1]}")
        dropout = any(ly.kind == "dropout" for ly in layers)
        if dropout:
            e(_DROPOUT_RNG)
        body_start = len(self.lines)
        e("static void forward(const float* restrict p, vf** A) {")
        for i, ly in enumerate(layers):
            self.fwd(ly, f"A[{self.bufs[i]}]", f"A[{self.bufs[i + 1]}]")
        e("}")
        if dropout:  # training forward: the same layers, dropout drawing its masks
            e("static void forward_train(const float* restrict p, vf** A, uint64_t* rng) {")
            for i, ly in enumerate(layers):
                self.fwd(ly, f"A[{self.bufs[i]}]", f"A[{self.bufs[i + 1]}]", train=True)
            e("}")
        e("static void backward(const float* restrict p, vf** A, vf* restrict G,"
          " vf* g0, vf* g1) {")
        e("  (void)g1;")
        cur, other = "g0", "g1"
        for i in reversed(range(len(layers))):
            ly = layers[i]
            src, dst = f"A[{self.bufs[i]}]", f"A[{self.bufs[i + 1]}]"
            need = i > 0
            if ly.kind in (*_ELEMENTWISE, "dropout", "flatten"):
                self.bwd(ly, src, dst, cur, cur, need)
            else:
                self.bwd(ly, src, dst, cur, other, need)
                cur, other = other, cur
        e("}")
        self.lines[body_start:body_start] = self.tables
        e(dropout_driver() if dropout else _DRIVER)
        return "\n".join(self.lines) + "\n"


def generate_source(plan: Plan) -> str:
    """The C source of the kernel for ``plan`` (exposed for tests and curious readers).

    The generator keeps scratch values in the layers' attrs; it works on a copy, so the
    caller's plan (and its :meth:`~.plan.Plan.signature`, the compile-cache key) is unchanged.
    """
    return _CodeGen(copy.deepcopy(plan)).source()
