visrec eval --split prequential --models bpr,mf-implicit --eval-every 5 --out docs/results --results docs/results.md
