"""Where does the cubic proof lose accuracy against brute force? (issue 21; docs/notes/maxk_proofs.md, the cubic gap)

Usage: python scripts/maxk_cubic_gap.py OUT.json MODEL.pt [MODEL.pt ...]   (TransformerLens state dicts of Max-of-K
models, e.g. runs/maxk_proofs-s0/models/seed0.pt; about 60 CPU-s per Max-of-4 model, 1 thread)

For each model: per input class (query == max or not, number c of non-max key tokens, gap = max - largest non-max
token), counts of inputs that
  B0  brute force gets right (exact float64 model),
  B1  exact attention and logits, but the positional OV term pessimised over positions (the cubic's PVOU_pess),
  B2  B1 + the wrong logit maximised separately for the direct path and per attended token (EU_pess, EPVOU_pess),
  B3  the official cubic count (B2's quantity with the attention pessimised over orderings and per single non-max
      token, mixed by convexity), fixed version (official commit bd79dde, 2024-07-30),
  B3' the official cubic count before that fix (attention to the non-max tokens set to the query's attention).
B1 and B2 are per-input (exact attention of each input), so B0 - B1, B1 - B2 and B2 - B3 attribute the loss to
the three relaxations.
"""

from __future__ import annotations

import json
import math
import resource
import sys

import torch

from reprolab.maxk_proofs import get_strategy
from reprolab.maxk_proofs.brute_force import brute_force_correct
from reprolab.maxk_proofs.model import load_state_dict_file

torch.set_num_threads(1)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def official_cubic(paths, fixed: bool = True) -> tuple[int, dict]:
    """The official cubic count, vectorised over the non-max token: (count, {(q, m, c): certified tokens})."""
    EQKE, EQKP, EVOU, PVOU, EU = paths.EQKE, paths.EQKP, paths.EVOU, paths.PVOU, paths.EU
    V, n = EQKE.shape[0], EQKP.shape[1]
    pos_sorted = EQKP[:, :-1].sort(dim=1).values  # [V, n-1]
    total = 0
    masks: dict = {}
    for m in range(V):
        pvou = (PVOU - PVOU[:, m : m + 1]).amax(dim=0)
        eu = EU - EU[:, m : m + 1]
        evou = EVOU - EVOU[:, m : m + 1]
        wrong = torch.ones(EU.shape[1], dtype=torch.bool)
        wrong[m] = False
        eu_pess = eu[:, wrong].amax(dim=1)
        epvou_pess = (evou + pvou)[:, wrong].amax(dim=1)
        for q in range(m + 1):
            pq = float(EQKP[q, -1])
            if q == m:
                value = float((eu[m] + evou[m] + pvou)[wrong].max())
            else:
                a = _attn(EQKE, pos_sorted[q], pq, q, m, torch.tensor([m]), 0, fixed)  # [2, 1, 3]
                logits = eu[q][None] + pvou[None] + evou[m][None] * a[:, 0, 0:1] + evou[q][None] * a[:, 0, 2:3]
                value = float(logits[:, wrong].max())
            total += int(value < 0)
            masks[(q, m, 0)] = torch.tensor(value < 0)
            if m == 0:
                continue
            ks = torch.arange(m)
            for c in range(1, n):
                if q != m and c >= n - 1:
                    continue
                a = _attn(EQKE, pos_sorted[q], pq, q, m, ks, c, fixed)  # [2, m, 3]
                w = a[..., 0] * epvou_pess[m] + a[..., 2] * epvou_pess[q] + a[..., 1] * epvou_pess[ks][None]
                mask = (eu_pess[q] + w.amax(dim=0)) < 0
                ok = int(mask.sum())
                masks[(q, m, c)] = mask
                total += math.comb(n - 1, c) * ok**c
    return total, masks


def _attn(EQKE, pos, pos_q, q, m, ks, c, fixed):
    n_keys = pos.numel()
    n_max = n_keys - c
    out = torch.zeros(2, ks.numel(), 3, dtype=torch.float64)
    for row, order in enumerate((pos, pos.flip(0))):
        s = order[None, :].repeat(ks.numel(), 1)
        s[:, :n_max] += EQKE[q, m]
        s[:, n_max:] += EQKE[q, ks][:, None]
        sq = torch.full((ks.numel(), 1), float(EQKE[q, q]) + pos_q, dtype=torch.float64)
        attn = torch.cat([s, sq], dim=1).softmax(dim=1)
        a_q = attn[:, -1]
        out[row, :, 0] = attn[:, :n_max].sum(1) + (a_q if q == m else 0.0)
        out[row, :, 1] = attn[:, n_max:n_keys].sum(1)
        out[row, :, 2] = 0.0 if q == m else a_q
        if not fixed:  # before bd79dde: the non-max attention was set to the query's attention
            out[row, :, 1] = 0.0 if q == m else a_q
    return out


def per_input(paths, n: int):
    """Per class counts of B0, B1, B2 (class = (q == m, c, gap)); chunks of V^2 inputs (last two keys)."""
    import itertools

    EQKE, EQKP, EVOU, PVOU, EU = paths.EQKE, paths.EQKP, paths.EVOU, paths.PVOU, paths.EU
    V = EQKE.shape[0]
    pair = torch.stack(torch.meshgrid(torch.arange(V), torch.arange(V), indexing="ij"), -1).reshape(-1, 2)
    pv = torch.stack([(PVOU - PVOU[:, m : m + 1]).amax(dim=0) for m in range(V)])  # [m, j]
    eu_p = torch.empty(V, V, dtype=torch.float64)  # [m, q]
    ep_p = torch.empty(V, V, dtype=torch.float64)  # [m, t]
    for m in range(V):
        wrong = torch.arange(EU.shape[1]) != m
        eu_p[m] = (EU - EU[:, m : m + 1])[:, wrong].amax(1)
        ep_p[m] = (EVOU - EVOU[:, m : m + 1] + pv[m])[:, wrong].amax(1)
    counts: dict = {}
    for q in range(V):
        for prefix in itertools.product(range(V), repeat=n - 3):
            pre = torch.tensor(prefix, dtype=torch.long).expand(pair.shape[0], n - 3)
            toks = torch.cat([pre, pair, torch.full((pair.shape[0], 1), q)], dim=1)  # [N, n]
            _count_chunk(counts, toks, q, EQKE, EQKP, EVOU, PVOU, EU, pv, eu_p, ep_p)
    return counts


def _count_chunk(counts, toks, q, EQKE, EQKP, EVOU, PVOU, EU, pv, eu_p, ep_p):
    m = toks.max(1).values
    a = (EQKE[q][toks] + EQKP[q][None, :]).softmax(1)  # [N, n]
    ev = EVOU[toks]  # [N, n, Vo]
    mix = torch.einsum("ni,nio->no", a, ev)
    logits = EU[q][None] + mix + a @ PVOU
    right = logits.gather(1, m[:, None])[:, 0]
    b0 = right > logits.scatter(1, m[:, None], float("-inf")).amax(1)
    # B1: positional term replaced by its per-m pessimum over positions (attention sums to 1)
    l1 = EU[q][None] + mix + pv[m]
    l1 = l1 - l1.gather(1, m[:, None])
    b1 = l1.scatter(1, m[:, None], float("-inf")).amax(1) < 0
    # B2: the wrong logit maximised separately for the direct path and per attended token
    b2 = (eu_p[m, q] + (a * ep_p[m[:, None], toks]).sum(1)) < 0
    keys = toks[:, :-1]
    nonmax = keys < m[:, None]
    c = nonmax.sum(1)
    second = torch.where(nonmax, keys, torch.full_like(keys, -1)).amax(1)
    gap = torch.where(c > 0, m - second, torch.zeros_like(m))
    cls = (toks[:, -1] == m).long() * 1000 + c * 100 + gap.clamp(max=99)
    for name, mask in (("n", torch.ones_like(b0)), ("b0", b0), ("b1", b1), ("b2", b2)):
        ids, cnt = torch.unique(cls[mask], return_counts=True)
        d = counts.setdefault(name, {})
        for i, k in zip(ids.tolist(), cnt.tolist()):
            d[i] = d.get(i, 0) + k


def cubic_by_class(masks: dict, n: int) -> dict[int, int]:
    """Certified inputs per class (same key as per_input) from the certified token sets of the cubic count."""
    out: dict[int, int] = {}
    for (q, m, c), mask in masks.items():
        if c == 0:
            if bool(mask):
                key = (q == m) * 1000
                out[key] = out.get(key, 0) + 1
            continue
        cum = torch.cumsum(mask.long(), 0)  # |S ∩ [0, j]|
        for j in torch.nonzero(mask)[:, 0].tolist():
            cnt = math.comb(n - 1, c) * (int(cum[j]) ** c - (int(cum[j]) - 1) ** c)
            key = (q == m) * 1000 + c * 100 + min(m - j, 99)
            out[key] = out.get(key, 0) + cnt
    return out


def main(files: list[str]) -> None:
    rows = []
    for f in files:
        model = load_state_dict_file(f)
        paths = model.path_products()
        n = model.config.n_ctx
        t = cpu()
        brute = brute_force_correct(model, paths)
        ours = get_strategy("cubic").prove(model)
        joint = get_strategy("joint_logit").prove(model)
        fixed, masks = official_cubic(paths, fixed=True)
        prefix, masks_pre = official_cubic(paths, fixed=False)
        t1 = cpu()
        counts = per_input(paths, n)
        counts["b3"] = cubic_by_class(masks, n)
        counts["b3pre"] = cubic_by_class(masks_pre, n)
        assert sum(counts["b3"].values()) == fixed and sum(counts["b3pre"].values()) == prefix
        t2 = cpu()
        N = model.config.d_vocab**n
        row = {
            "file": f,
            "total": N,
            "brute": brute / N,
            "ours_cubic": ours.bound,
            "joint_logit": joint.bound,
            "official_cubic_fixed": fixed / N,
            "official_cubic_prefix": prefix / N,
            "B1_pos_pess": sum(counts["b1"].values()) / N,
            "B2_sep_wrong": sum(counts["b2"].values()) / N,
            "B0_check": sum(counts["b0"].values()) / N,
            "cpu_proofs": t1 - t,
            "cpu_per_input": t2 - t1,
            "classes": {k: {c: v.get(c, 0) for c in counts["n"]} for k, v in counts.items()},
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "classes"}), flush=True)
    with open(sys.argv[1], "w") as handle:
        json.dump(rows, handle)
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Means over the models, and the cubic count's loss per input class (summed over the models)."""
    import statistics as st

    names = ["brute", "B1_pos_pess", "B2_sep_wrong", "official_cubic_fixed", "ours_cubic", "official_cubic_prefix"]
    for key in [*names, "joint_logit"]:
        v = [r[key] for r in rows]
        print(f"{key:24s} {st.mean(v):.4f} ± {st.stdev(v):.4f}  min {min(v):.4f} max {max(v):.4f}")
    print("CPU-s", sum(r["cpu_proofs"] + r["cpu_per_input"] for r in rows))
    total = sum(r["total"] for r in rows)
    table: dict = {}
    for r in rows:
        for name, per_class in r["classes"].items():
            for cls, count in per_class.items():
                cell = table.setdefault(_bucket(int(cls)), {})
                cell[name] = cell.get(name, 0) + count
    loss = sum(c.get("b0", 0) - c.get("b3", 0) for c in table.values())
    print("class | share of inputs | brute force wrong | cubic loss | % of the loss | b0-b1 | b1-b2 | b2-b3 | pre-b0")
    for key in sorted(table):
        c = {name: table[key].get(name, 0) / total for name in ("n", "b0", "b1", "b2", "b3", "b3pre")}
        print(
            f"{key} | {c['n']:.4f} | {c['n'] - c['b0']:.5f} | {c['b0'] - c['b3']:.5f} | "
            f"{100 * (c['b0'] - c['b3']) * total / loss:.1f} | {c['b0'] - c['b1']:.5f} | {c['b1'] - c['b2']:.5f} | "
            f"{c['b2'] - c['b3']:.5f} | {c['b3pre'] - c['b0']:.5f}"
        )
    over = sum(max(0, c.get("b3pre", 0) - c.get("b0", 0)) for c in table.values())
    print("inputs the pre-fix count certifies beyond brute force within some class (a lower bound):", over)


def _bucket(cls: int) -> tuple[str, int, str]:
    """(query is the max?, number of non-max key tokens, gap between the max and the largest non-max token)."""
    is_max, rest = divmod(cls, 1000)
    c, gap = divmod(rest, 100)
    label = "c=0" if c == 0 else "gap 1" if gap == 1 else "gap 2" if gap == 2 else "gap 3-5" if gap <= 5 else "gap 6+"
    return ("q=max" if is_max else "q<max"), c, label


if __name__ == "__main__":
    main(sys.argv[2:])
