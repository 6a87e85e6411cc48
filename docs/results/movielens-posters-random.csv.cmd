visrec eval --split random --epochs 10 --epoch-curve --models bpr,mf-implicit,mf,wmf --out docs/results --results docs/results.md
