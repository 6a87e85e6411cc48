package models

import "math"

// Hand-written vector kernels for the online steps. They are unrolled by four with
// independent accumulators (the compiler neither vectorises nor reassociates float sums),
// and they never allocate.
//
// Overflow policy, shared by every step (see fastOK): a step's vector update runs in the
// float32 kernels only when the summed squares of the vectors it touches (computed in the
// same pass as the dot products) and its scalar coefficients are small enough that no
// product or sum can overflow; otherwise it runs in float64 (update2Safe, update3Safe) and
// every value written is clamped to ±paramLimit. Biases and μ are always updated in float64
// and clamped the same way. Parameters therefore stay finite whatever finite values the
// rows and the example hold. The check (three extra multiply-adds per element) cost 10–20%
// of a K=64 BPR step in a micro-benchmark.
const (
	// normLimit bounds the summed squares of the vectors a fast step touches; below it every
	// element is below 1e15 in magnitude.
	normLimit = 1e30
	// coefLimit bounds the scalar coefficients of a fast update (learning rate × weight ×
	// residual, and 1 - learning rate × regularisation).
	coefLimit = 1e6
	// paramLimit is the magnitude to which the float64 fallback clamps what it writes.
	paramLimit = 1e15
	// scoreLimit is the magnitude to which Score clamps its result.
	scoreLimit = math.MaxFloat32
)

// The loops below index all slices with one counter after reslicing them to a common
// length n, a form the compiler proves in bounds, so the loop bodies carry no bounds checks.

// dot returns Σ a[k]·b[k]. len(b) must be at least len(a).
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k <= n-4; k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < n; k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// dot64 is dot in float64: it cannot overflow for finite float32 inputs.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for k, v := range a {
		s += float64(v) * float64(b[k])
	}
	return s
}

// dotNorm returns Σ p·q and Σ p²+q². len(q) must be at least len(p).
func dotNorm(p, q []float32) (s, n2 float32) {
	n := len(p)
	q = q[:n]
	var s0, s1, n0, n1 float32
	k := 0
	for ; k <= n-4; k += 4 {
		p0, p1, p2, p3 := p[k], p[k+1], p[k+2], p[k+3]
		q0, q1, q2, q3 := q[k], q[k+1], q[k+2], q[k+3]
		s0 += p0*q0 + p2*q2
		s1 += p1*q1 + p3*q3
		n0 += (p0*p0 + q0*q0) + (p2*p2 + q2*q2)
		n1 += (p1*p1 + q1*q1) + (p3*p3 + q3*q3)
	}
	for ; k < n; k++ {
		s0 += p[k] * q[k]
		n0 += p[k]*p[k] + q[k]*q[k]
	}
	return s0 + s1, n0 + n1
}

// dot2Norm returns Σ p·qi, Σ p·qj and Σ p²+qi²+qj². qi and qj must be at least as long as p.
func dot2Norm(p, qi, qj []float32) (si, sj, n2 float32) {
	n := len(p)
	qi, qj = qi[:n], qj[:n]
	var i0, i1, j0, j1, n0, n1 float32
	k := 0
	for ; k <= n-4; k += 4 {
		p0, p1, p2, p3 := p[k], p[k+1], p[k+2], p[k+3]
		a0, a1, a2, a3 := qi[k], qi[k+1], qi[k+2], qi[k+3]
		b0, b1, b2, b3 := qj[k], qj[k+1], qj[k+2], qj[k+3]
		i0 += p0*a0 + p2*a2
		i1 += p1*a1 + p3*a3
		j0 += p0*b0 + p2*b2
		j1 += p1*b1 + p3*b3
		n0 += (p0*p0 + a0*a0 + b0*b0) + (p2*p2 + a2*a2 + b2*b2)
		n1 += (p1*p1 + a1*a1 + b1*b1) + (p3*p3 + a3*a3 + b3*b3)
	}
	for ; k < n; k++ {
		i0 += p[k] * qi[k]
		j0 += p[k] * qj[k]
		n0 += p[k]*p[k] + qi[k]*qi[k] + qj[k]*qj[k]
	}
	return i0 + i1, j0 + j1, n0 + n1
}

// update2 applies, from the old values of both vectors (len(q) >= len(p)),
//
//	p ← a·p − c·q,  q ← a·q − c·p.
//
// Each unrolled element is loaded, updated and stored on its own, which keeps the working
// set in registers; the out-of-order core overlaps the four.
func update2(p, q []float32, a, c float32) {
	n := len(p)
	q = q[:n]
	k := 0
	for ; k <= n-4; k += 4 {
		p0, q0 := p[k], q[k]
		p[k], q[k] = a*p0-c*q0, a*q0-c*p0
		p1, q1 := p[k+1], q[k+1]
		p[k+1], q[k+1] = a*p1-c*q1, a*q1-c*p1
		p2, q2 := p[k+2], q[k+2]
		p[k+2], q[k+2] = a*p2-c*q2, a*q2-c*p2
		p3, q3 := p[k+3], q[k+3]
		p[k+3], q[k+3] = a*p3-c*q3, a*q3-c*p3
	}
	for ; k < n; k++ {
		pk, qk := p[k], q[k]
		p[k], q[k] = a*pk-c*qk, a*qk-c*pk
	}
}

// update3 applies, from the old values of all three vectors (qi, qj at least as long as p),
//
//	p ← a·p − ci·qi − cj·qj,  qi ← a·qi − ci·p,  qj ← a·qj − cj·p.
func update3(p, qi, qj []float32, a, ci, cj float32) {
	n := len(p)
	qi, qj = qi[:n], qj[:n]
	k := 0
	for ; k <= n-4; k += 4 {
		p0, a0, b0 := p[k], qi[k], qj[k]
		p[k], qi[k], qj[k] = a*p0-ci*a0-cj*b0, a*a0-ci*p0, a*b0-cj*p0
		p1, a1, b1 := p[k+1], qi[k+1], qj[k+1]
		p[k+1], qi[k+1], qj[k+1] = a*p1-ci*a1-cj*b1, a*a1-ci*p1, a*b1-cj*p1
		p2, a2, b2 := p[k+2], qi[k+2], qj[k+2]
		p[k+2], qi[k+2], qj[k+2] = a*p2-ci*a2-cj*b2, a*a2-ci*p2, a*b2-cj*p2
		p3, a3, b3 := p[k+3], qi[k+3], qj[k+3]
		p[k+3], qi[k+3], qj[k+3] = a*p3-ci*a3-cj*b3, a*a3-ci*p3, a*b3-cj*p3
	}
	for ; k < n; k++ {
		pk, ak, bk := p[k], qi[k], qj[k]
		p[k], qi[k], qj[k] = a*pk-ci*ak-cj*bk, a*ak-ci*pk, a*bk-cj*pk
	}
}

// update2Safe is update2 in float64 with every written value clamped to ±paramLimit.
func update2Safe(p, q []float32, a, c float64) {
	q = q[:len(p)]
	for k := range p {
		pk, qk := float64(p[k]), float64(q[k])
		p[k], q[k] = clampParam(a*pk-c*qk), clampParam(a*qk-c*pk)
	}
}

// update3Safe is update3 in float64 with every written value clamped to ±paramLimit.
func update3Safe(p, qi, qj []float32, a, ci, cj float64) {
	qi, qj = qi[:len(p)], qj[:len(p)]
	for k := range p {
		pk, ak, bk := float64(p[k]), float64(qi[k]), float64(qj[k])
		p[k] = clampParam(a*pk - ci*ak - cj*bk)
		qi[k], qj[k] = clampParam(a*ak-ci*pk), clampParam(a*bk-cj*pk)
	}
}

// fastOK reports whether a float32 update with squared input norm n2 and coefficients
// a, c1, c2 cannot overflow. NaN in any argument makes it false.
func fastOK(n2 float32, a, c1, c2 float64) bool {
	return n2 < normLimit && math.Abs(a) <= coefLimit && math.Abs(c1) <= coefLimit && math.Abs(c2) <= coefLimit
}

// tinyCoef: fast-path coefficients below it are flushed to zero. Their products with
// parameters below 1e15 change nothing at float32 precision, and subnormal products cost
// about a hundred times a normal multiply on x86.
const tinyCoef = 1e-20

// ftz converts a coefficient to float32, flushing |c| < tinyCoef to zero.
func ftz(c float64) float32 {
	if math.Abs(c) < tinyCoef {
		return 0
	}
	return float32(c)
}

// clampParam clamps v to ±paramLimit; NaN (impossible for finite inputs) becomes 0.
func clampParam(v float64) float32 {
	switch {
	case v > paramLimit:
		return paramLimit
	case v < -paramLimit:
		return -paramLimit
	case v == v:
		return float32(v)
	}
	return 0
}

// clamp32 converts v to float32, clamping to ±limit and mapping NaN to 0.
func clamp32(v, limit float64) float32 {
	switch {
	case v > limit:
		return float32(limit)
	case v < -limit:
		return float32(-limit)
	case v == v:
		return float32(v)
	}
	return 0
}

// clip limits v to ±m; m <= 0 means no limit.
func clip(v, m float64) float64 {
	if m <= 0 {
		return v
	}
	return math.Max(-m, math.Min(m, v))
}

// softplusNeg returns -ln σ(x) = ln(1+e^-x) and σ(-x), computed without overflow.
func softplusNeg(x float64) (loss, sigNeg float64) {
	if x >= 0 {
		e := math.Exp(-x)
		return math.Log1p(e), e / (1 + e)
	}
	e := math.Exp(x)
	return -x + math.Log1p(e), 1 / (1 + e)
}

// sameRow reports whether a and b share their first element.
func sameRow(a, b []float32) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
}

func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
