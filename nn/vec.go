package nn

// Vector helpers for the memory-bound loops. addTo is elementwise, so its results do not
// depend on how it is vectorised; sum32 fixes its own order.

// addTo sets dst[i] += src[i] for i < len(dst); src must be at least as long.
func addTo(dst, src []float32) {
	n := len(dst)
	src = src[:n]
	i := 0
	if useAsmGemm && n >= 8 {
		i = n &^ 7
		addToAVX(&dst[0], &src[0], i)
	}
	for ; i < n; i++ {
		dst[i] += src[i]
	}
}

// sum32 returns Σx in float32 with eight interleaved partial sums (element i goes to
// sum i mod 8), combined pairwise at the end: a fixed order, four times the throughput
// of one running sum.
func sum32(x []float32) float32 {
	var s [8]float32
	i := 0
	if n := len(x) &^ 7; useAsmGemm && n > 0 {
		sum8AVX(&x[0], n, &s)
		i = n
	}
	for ; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s[0] += v[0]
		s[1] += v[1]
		s[2] += v[2]
		s[3] += v[3]
		s[4] += v[4]
		s[5] += v[5]
		s[6] += v[6]
		s[7] += v[7]
	}
	for j := 0; i < len(x); i, j = i+1, j+1 {
		s[j] += x[i]
	}
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
}
