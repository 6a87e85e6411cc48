visrec eval --split random --epochs 20 --epoch-curve --models bpr,mf-implicit,mf,pmf,wmf,vbpr,neumf,multvae,bivae --out docs/results --results docs/results.md --peers /tmp/peers_random_mine.csv
