#!/usr/bin/env python3
"""Peers side by side: Cornac's and implicit's BPR, WMF/ALS and VBPR on a visrec split.

A benchmark, not a test: it reads a split directory written by visrec (train.csv, test.csv,
optional cold_items.txt, split.json, optional features.npy + features_ids.txt), trains each
peer model with the same number of factors, epochs and seed, ranks the items for every test
user with the same rules and metric definitions as visrec's eval.Evaluate, and writes one
CSV row per model. See README.md beside this file.
"""

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

# implicit warns (and runs slower) when OpenBLAS uses several threads of its own inside
# its parallel loops; set before numpy is imported. The caller's setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

CUTOFFS = (10, 20)
COLUMNS = ["library", "model", "K", "epochs", "train_seconds", "auc",
           "recall@10", "recall@20", "ndcg@10", "ndcg@20", "users"]
MODELS = ["cornac-bpr", "cornac-wmf", "cornac-vbpr", "implicit-bpr", "implicit-als"]
# The Python modules each model needs; a model whose modules are missing is skipped.
REQUIRES = {
    "cornac-bpr": ["cornac"],
    "cornac-wmf": ["cornac", "tensorflow"],
    "cornac-vbpr": ["cornac", "torch"],
    "implicit-bpr": ["implicit"],
    "implicit-als": ["implicit"],
}


# ---------------------------------------------------------------- reading the split

class Split:
    """A split directory in dense indices.

    Items are every id of train.csv, test.csv and cold_items.txt (visrec's item universe),
    in order of first appearance; users those of train.csv and test.csv.
    """

    def __init__(self, directory):
        self.dir = directory
        self.info = {}
        meta = os.path.join(directory, "split.json")
        if os.path.exists(meta):
            with open(meta, encoding="utf-8") as f:
                self.info = json.load(f)
            if self.info.get("format", 1) != 1:
                print(f"warning: split.json format {self.info.get('format')}, expected 1",
                      file=sys.stderr)
        self.user_ids, self.item_ids = [], []
        self.user_index, self.item_index = {}, {}
        self.train = self._read_interactions("train.csv")
        self.test = self._read_interactions("test.csv")
        self.cold = None
        cold = os.path.join(directory, "cold_items.txt")
        if os.path.exists(cold):
            with open(cold, encoding="utf-8") as f:
                self.cold = np.array(sorted({self._item(line.rstrip("\r\n"))
                                             for line in f if line.strip()}), dtype=np.int64)

    def _user(self, uid):
        if uid not in self.user_index:
            self.user_index[uid] = len(self.user_ids)
            self.user_ids.append(uid)
        return self.user_index[uid]

    def _item(self, iid):
        if iid not in self.item_index:
            self.item_index[iid] = len(self.item_ids)
            self.item_ids.append(iid)
        return self.item_index[iid]

    def _read_interactions(self, name):
        """Returns (users, items) as int arrays, one entry per row of the file."""
        path = os.path.join(self.dir, name)
        users, items = [], []
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            if header[:4] != ["user", "item", "value", "ts"]:
                raise SystemExit(f"{path}: header {header}, want user,item,value,ts[,type]")
            for row in reader:
                users.append(self._user(row[0]))
                items.append(self._item(row[1]))
        return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)

    def known_items(self):
        """The items with at least one training interaction, ascending."""
        return np.unique(self.train[1])

    def train_matrix(self):
        """(m, known): m is the binary users x known-items CSR matrix of the training
        interactions (duplicates once); column c is item known[c]."""
        u, i = self.train
        known = self.known_items()
        col = np.searchsorted(known, i)
        m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, col)),
                          shape=(self.n_users, len(known)))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m, known

    def features(self):
        """(matrix, has_row) for all items, or None without features.npy.

        Row r of the matrix is the feature vector of item r; items without a row in
        features.npy get zeros, and has_row[r] says which have one.
        """
        path = os.path.join(self.dir, "features.npy")
        if not os.path.exists(path):
            return None
        raw = np.load(path).astype(np.float32)
        with open(os.path.join(self.dir, "features_ids.txt"), encoding="utf-8") as f:
            ids = [line.rstrip("\r\n") for line in f if line.strip()]
        if len(ids) != raw.shape[0]:
            raise SystemExit(f"features.npy has {raw.shape[0]} rows, features_ids.txt {len(ids)} ids")
        feats = np.zeros((self.n_items, raw.shape[1]), dtype=np.float32)
        has = np.zeros(self.n_items, dtype=bool)
        for row, iid in enumerate(ids):
            idx = self.item_index.get(iid)
            if idx is not None:
                feats[idx] = raw[row]
                has[idx] = True
        return feats, has


# ---------------------------------------------------------------- metrics (visrec's)

class Metrics:
    """Per-user figures averaged over users, with the definitions of visrec's eval.Evaluate.

    For a user with training items R and distinct test items T, the candidates are
    C = A minus (R minus T), A being all items or the cold items; the positives P = T ∩ C,
    the negatives N = C minus P. Scores rank descending; ties are pessimistic: among equal
    scores every negative comes before every positive. The 1-based rank of a positive is
    1 + (negatives scoring >= it) + (positives ranked before it). NaN scores rank as -inf.

    Recall@K = |{p : rank(p) <= K}| / |P|; NDCG@K = sum over those of 1/log2(rank+1),
    divided by sum_{r=1..min(K,|P|)} 1/log2(r+1); AUC = (pairs (p, n) with s_p > s_n, plus
    half of those with s_p = s_n) / (|P| |N|), averaged over users with |N| > 0. A user
    counts when |P| >= 1.
    """

    def __init__(self, ks=CUTOFFS):
        self.ks = ks
        self.users = 0
        self.auc_users = 0
        self.auc_sum = 0.0
        self.recall = {k: 0.0 for k in ks}
        self.ndcg = {k: 0.0 for k in ks}

    def add(self, scores, candidates, positives):
        """Adds one user: scores over all items, a boolean candidate mask, positive items."""
        scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float64)
        pos = np.unique(positives)
        pos = pos[candidates[pos]]
        if len(pos) == 0:
            return
        neg_mask = candidates.copy()
        neg_mask[pos] = False
        neg = np.sort(scores[neg_mask])
        sp_ = scores[pos]
        below = np.searchsorted(neg, sp_, side="left")   # negatives < s_p
        not_above = np.searchsorted(neg, sp_, side="right")  # negatives <= s_p
        n_neg = len(neg)
        self.users += 1
        if n_neg > 0:
            self.auc_users += 1
            self.auc_sum += (below.sum() + 0.5 * (not_above - below).sum()) / (len(pos) * n_neg)
        # Positives in ranking order: score descending, ties by item index; the j-th
        # (0-based) has j positives before it.
        order = np.lexsort((pos, -sp_))
        ranks = 1 + (n_neg - below[order]) + np.arange(len(pos))
        for k in self.ks:
            hit = ranks <= k
            self.recall[k] += hit.sum() / len(pos)
            dcg = (1.0 / np.log2(ranks[hit] + 1)).sum()
            idcg = (1.0 / np.log2(np.arange(1, min(k, len(pos)) + 1) + 1)).sum()
            self.ndcg[k] += dcg / idcg

    def row(self):
        n = max(self.users, 1)
        out = {"auc": self.auc_sum / self.auc_users if self.auc_users else float("nan"),
               "users": self.users}
        for k in self.ks:
            out[f"recall@{k}"] = self.recall[k] / n
            out[f"ndcg@{k}"] = self.ndcg[k] / n
        return out


def evaluate(split, score_user, cold_only=False):
    """Ranks the candidates of every test user with score_user(u) -> scores over all items."""
    tu, ti = split.test
    ru, ri = split.train
    test_items = group(tu, ti)
    train_items = group(ru, ri)
    base = np.zeros(split.n_items, dtype=bool)
    if cold_only:
        if split.cold is None:
            raise SystemExit("--candidates cold needs cold_items.txt")
        base[split.cold] = True
    else:
        base[:] = True
    m = Metrics()
    for u in sorted(test_items):
        t = np.array(test_items[u], dtype=np.int64)
        cand = base.copy()
        r = np.setdiff1d(np.array(train_items.get(u, []), dtype=np.int64), t)
        cand[r] = False
        m.add(score_user(u), cand, t)
    return m.row()


def group(users, items):
    """Maps each user to the list of its items."""
    out = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        out.setdefault(u, []).append(i)
    return out


def self_test(seed=1):
    """Checks Metrics against a brute-force reading of the definitions, with many ties."""
    rng = np.random.default_rng(seed)
    for trial in range(300):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 5, n).astype(np.float64)  # few values: many ties
        if trial % 7 == 0:
            scores[rng.integers(0, n)] = np.nan
        cand = rng.random(n) < 0.8
        pos = rng.choice(n, size=int(rng.integers(1, n + 1)), replace=True)
        m = Metrics(ks=(1, 3, 10))
        m.add(scores.copy(), cand, pos)
        want = brute_force(scores, cand, pos, (1, 3, 10))
        got = m.row()
        if want is None:
            assert m.users == 0, (trial, got)
            continue
        for key, val in want.items():
            g = got[key]
            assert (math.isnan(val) and math.isnan(g)) or abs(g - val) < 1e-12, (trial, key, g, val)
    print("metrics self-test: ok (300 random cases against brute force)")


def brute_force(scores, cand, pos, ks):
    s = np.where(np.isnan(scores), -np.inf, scores)
    P = sorted({int(p) for p in pos if cand[p]})
    if not P:
        return None
    N = [i for i in range(len(s)) if cand[i] and i not in P]
    # Ranking: score descending; among equal scores negatives first, then positives by index.
    ranked = sorted([i for i in range(len(s)) if cand[i]],
                    key=lambda i: (-s[i], 1 if i in P else 0, i))
    rank = {i: r + 1 for r, i in enumerate(ranked)}
    out = {"users": 1}
    pairs = [(1.0 if s[p] > s[q] else 0.5 if s[p] == s[q] else 0.0) for p in P for q in N]
    out["auc"] = sum(pairs) / len(pairs) if pairs else float("nan")
    for k in ks:
        hits = [rank[p] for p in P if rank[p] <= k]
        out[f"recall@{k}"] = len(hits) / len(P)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(P)) + 1))
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 1) for r in hits) / idcg
    return out


# ---------------------------------------------------------------- the peers

def scatter(n_items, known, scores, fill=-np.inf):
    """Scores over all items from scores over the model's known items (others: fill)."""
    out = np.full(n_items, fill, dtype=np.float64)
    out[known] = scores
    return out


def cornac_dataset(split, seed):
    """A Cornac Dataset of the training interactions (binary), with Cornac's own index maps."""
    import cornac
    ru, ri = split.train
    triples = [(split.user_ids[u], split.item_ids[i], 1.0)
               for u, i in zip(ru.tolist(), ri.tolist(), strict=True)]
    return cornac.data.Dataset.build(triples, fmt="UIR", seed=seed)


def cornac_scorer(split, ds, score_known, unknown_items=None):
    """score_user for a Cornac model: score_known(model_user) -> scores over ds's items.

    Items Cornac does not know score -inf unless unknown_items(model_user) gives their
    scores (VBPR's visual part); users it does not know score 0 everywhere it can.
    """
    known_items = np.array([split.item_index[iid] for iid in ds.iid_map], dtype=np.int64)
    order = np.array([ds.iid_map[iid] for iid in ds.iid_map], dtype=np.int64)

    def score_user(u):
        mu = ds.uid_map.get(split.user_ids[u])
        if mu is None:
            return scatter(split.n_items, known_items, np.zeros(len(known_items)))
        s = np.asarray(score_known(mu), dtype=np.float64)[order]
        out = scatter(split.n_items, known_items, s)
        if unknown_items is not None:
            idx, vals = unknown_items(mu)
            out[idx] = vals
        return out
    return score_user


def train_cornac_bpr(split, args):
    import cornac
    ds = cornac_dataset(split, args.seed)
    model = cornac.models.BPR(k=args.factors, max_iter=args.epochs, learning_rate=args.bpr_lr,
                              lambda_reg=args.bpr_reg, seed=args.seed, verbose=False)
    t = time.perf_counter()
    model.fit(ds)
    secs = time.perf_counter() - t
    return secs, cornac_scorer(split, ds, model.score)


def train_cornac_wmf(split, args):
    import cornac
    import tensorflow  # noqa: F401  (imported before the clock starts)
    ds = cornac_dataset(split, args.seed)
    model = cornac.models.WMF(k=args.factors, lambda_u=args.wmf_reg, lambda_v=args.wmf_reg,
                              a=args.wmf_a, b=args.wmf_b, learning_rate=args.wmf_lr,
                              max_iter=args.epochs, seed=args.seed, verbose=False)
    t = time.perf_counter()
    model.fit(ds)
    secs = time.perf_counter() - t
    return secs, cornac_scorer(split, ds, model.score)


def train_cornac_vbpr(split, args, features):
    import cornac
    import torch
    torch.manual_seed(args.seed)
    feats, has = features
    ds = cornac_dataset(split, args.seed)
    known = np.array([split.item_index[iid] for iid in ds.iid_map], dtype=np.int64)
    # Cornac reads item_image.features[:num_items] by its own item index.
    order = np.empty(len(known), dtype=np.int64)
    order[[ds.iid_map[iid] for iid in ds.iid_map]] = known
    image = cornac.data.ImageModality(features=feats[order], ids=list(ds.iid_map.keys()))
    image.build(id_map=ds.iid_map)
    ds.add_modalities(item_image=image)
    model = cornac.models.VBPR(k=args.factors, k2=args.vbpr_k2, n_epochs=args.epochs,
                               learning_rate=args.vbpr_lr, seed=args.seed, use_gpu=False,
                               verbose=False)
    t = time.perf_counter()
    model.fit(ds)
    secs = time.perf_counter() - t
    # Items unknown to Cornac but with features: the visual part of VBPR's score,
    # theta_u . (E f_i) + beta' . f_i (their beta_i and gamma_i are untrained: 0).
    is_known = np.zeros(split.n_items, dtype=bool)
    is_known[known] = True
    cold = np.flatnonzero(~is_known & has)
    cold_theta = feats[cold] @ model.emb_matrix
    cold_bias = (feats[cold] @ model.beta_prime).ravel()

    def unknown_items(mu):
        return cold, cold_theta @ model.theta_user[mu] + cold_bias
    return secs, cornac_scorer(split, ds, model.score, unknown_items)


def implicit_scorer(split, model, m, known):
    """score_user for an implicit model trained on the matrix m over the items known.

    Like cornac_scorer: other items score -inf, users without training rows 0.
    """
    user_factors = np.asarray(model.user_factors)
    item_factors = np.asarray(model.item_factors)
    has_train = np.diff(m.indptr) > 0

    def score_user(u):
        if not has_train[u]:
            return scatter(split.n_items, known, np.zeros(len(known)))
        return scatter(split.n_items, known, item_factors @ user_factors[u])
    return score_user


def train_implicit_bpr(split, args):
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    m, known = split.train_matrix()
    model = BayesianPersonalizedRanking(factors=args.factors, learning_rate=args.bpr_lr,
                                        regularization=args.bpr_reg, iterations=args.epochs,
                                        num_threads=args.threads, random_state=args.seed)
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    secs = time.perf_counter() - t
    return secs, implicit_scorer(split, model, m, known)


def train_implicit_als(split, args):
    from implicit.cpu.als import AlternatingLeastSquares
    m, known = split.train_matrix()
    # The WMF objective of Cornac's parametrisation, divided by b: implicit weighs a
    # positive alpha (target 1) and a non-positive 1 (target 0), and regularises with
    # lambda ||x||^2 where Cornac uses lambda_u/2 ||x||^2 (tf.nn.l2_loss).
    model = AlternatingLeastSquares(factors=args.factors,
                                    regularization=args.wmf_reg / (2 * args.wmf_b),
                                    alpha=args.wmf_a / args.wmf_b, iterations=args.epochs,
                                    num_threads=args.threads, random_state=args.seed)
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    secs = time.perf_counter() - t
    return secs, implicit_scorer(split, model, m, known)


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("split_dir", nargs="?", help="a split directory written by visrec")
    p.add_argument("--out", default="peers.csv", help="output CSV (default peers.csv)")
    p.add_argument("-k", "--factors", type=int, default=64, help="latent factors K (64)")
    p.add_argument("--epochs", type=int, default=20,
                   help="epochs (SGD passes; ALS sweeps; 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated subset of " + ",".join(MODELS))
    p.add_argument("--candidates", choices=["all", "cold"], default="all",
                   help="rank all items (default) or only those of cold_items.txt")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for implicit (0: all cores); Cornac BPR uses 1 when seeded")
    p.add_argument("--bpr-lr", type=float, default=0.01, help="BPR learning rate (0.01)")
    p.add_argument("--bpr-reg", type=float, default=0.01, help="BPR L2 regularisation (0.01)")
    p.add_argument("--wmf-a", type=float, default=1.0,
                   help="WMF confidence of a positive (Cornac's a; 1.0)")
    p.add_argument("--wmf-b", type=float, default=0.01,
                   help="WMF confidence of a non-positive (Cornac's b; 0.01)")
    p.add_argument("--wmf-reg", type=float, default=0.01,
                   help="WMF L2 regularisation (Cornac's lambda_u = lambda_v; 0.01)")
    p.add_argument("--wmf-lr", type=float, default=0.001,
                   help="Cornac WMF Adam learning rate (0.001)")
    p.add_argument("--vbpr-lr", type=float, default=0.005, help="VBPR Adam learning rate (0.005)")
    p.add_argument("--vbpr-k2", type=int, default=None, help="VBPR visual factors (default K)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--self-test", action="store_true",
                   help="check the metrics against brute force, then exit")
    args = p.parse_args(argv)
    if args.self_test:
        return args
    if not args.split_dir:
        p.error("split_dir is required")
    if args.vbpr_k2 is None:
        args.vbpr_k2 = args.factors
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in args.models:
        if m not in MODELS:
            p.error(f"unknown model {m!r}; known: {', '.join(MODELS)}")
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if args.self_test:
        self_test()
        return 0
    split = Split(args.split_dir)
    if not args.child:
        print(f"split {args.split_dir}: kind={split.info.get('kind', '?')} "
          f"train={len(split.train[0])} test={len(split.test[0])} "
          f"users={split.n_users} items={split.n_items} "
              f"cold_items={0 if split.cold is None else len(split.cold)} "
              f"test_rows_with_untrained_items="
              f"{np.isin(split.test[1], split.known_items(), invert=True).mean():.3f}",
              file=sys.stderr)
    features = None
    if "cornac-vbpr" in args.models:
        features = split.features()
        if features is None:
            print("no features.npy: skipping cornac-vbpr", file=sys.stderr)
        elif not args.child:
            print(f"features: {features[0].shape[1]} dims for {features[1].sum()} of "
                  f"{split.n_items} items (the others: zeros)", file=sys.stderr)
    trainers = {
        "cornac-bpr": lambda: train_cornac_bpr(split, args),
        "cornac-wmf": lambda: train_cornac_wmf(split, args),
        "cornac-vbpr": lambda: train_cornac_vbpr(split, args, features),
        "implicit-bpr": lambda: train_implicit_bpr(split, args),
        "implicit-als": lambda: train_implicit_als(split, args),
    }
    if args.child:
        name = args.models[0]
        library, model = name.split("-", 1)
        secs, score_user = trainers[name]()
        res = evaluate(split, score_user, cold_only=args.candidates == "cold")
        row = {"library": library, "model": model, "K": args.factors, "epochs": args.epochs,
               "train_seconds": f"{secs:.3f}"}
        for key in ("auc", "recall@10", "recall@20", "ndcg@10", "ndcg@20"):
            row[key] = f"{res[key]:.4f}"
        row["users"] = res["users"]
        write_csv(args.out, [row])
        return 0
    # Each model runs in a process of its own: TensorFlow and PyTorch cannot share one
    # (each brings its own LLVM, and the second aborts on load), and the timings and
    # memory of one model do not leak into the next.
    rows, failed = [], []
    argv = list(argv if argv is not None else sys.argv[1:])
    for name in args.models:
        if name == "cornac-vbpr" and features is None:
            continue
        missing = [m for m in REQUIRES[name] if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{name}: skipped, {', '.join(missing)} not installed", file=sys.stderr)
            continue
        tmp = f"{args.out}.{name}.tmp"
        cmd = [sys.executable, os.path.abspath(__file__)] + argv + ["--models", name, "--out", tmp, "--child"]
        print(f"--- {name}", file=sys.stderr)
        rc = subprocess.call(cmd)
        if rc != 0 or not os.path.exists(tmp):
            print(f"{name}: failed (exit status {rc})", file=sys.stderr)
            failed.append(name)
            continue
        with open(tmp, newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f))
        os.remove(tmp)
        rows.append(row)
        print(" ".join(f"{c}={row[c]}" for c in COLUMNS), file=sys.stderr)
        write_csv(args.out, rows)  # after each model, so a later failure keeps these rows
    write_csv(args.out, rows)
    print_table(rows)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def print_table(rows):
    """Prints the rows as an aligned text table on stdout."""
    table = [COLUMNS] + [[str(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
