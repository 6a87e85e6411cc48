package nn

import (
	"math"
	"math/rand/v2"
)

// Initialisers fill a tensor in element order from the given generator, so the same seed
// gives the same parameters. Weight shapes follow the package's conventions: a dense
// weight is [in, out] (MatMul(x, W)), a convolution filter bank is [F, C, KH, KW].

// Fans returns the fan-in and fan-out of a weight of the given shape: [in, out] for 2-D,
// C·KH·KW and F·KH·KW for a filter bank [F,C,KH,KW], the size for 1-D.
func Fans(shape []int) (fanIn, fanOut int) {
	switch len(shape) {
	case 1:
		return shape[0], shape[0]
	case 2:
		return shape[0], shape[1]
	default:
		rf := shapeLen(shape[2:])
		return shape[1] * rf, shape[0] * rf
	}
}

// XavierUniform fills x from U(−a, a) with a = √(6/(fanIn+fanOut)) (Glorot & Bengio).
func XavierUniform(x *Tensor, fanIn, fanOut int, rng *rand.Rand) {
	a := math.Sqrt(6 / float64(max(1, fanIn+fanOut)))
	for i := range x.Data {
		x.Data[i] = float32((2*rng.Float64() - 1) * a)
	}
}

// HeNormal fills x from N(0, 2/fanIn) (He et al.), for layers followed by ReLU.
func HeNormal(x *Tensor, fanIn int, rng *rand.Rand) {
	Normal(x, math.Sqrt(2/float64(max(1, fanIn))), rng)
}

// Normal fills x from N(0, std²).
func Normal(x *Tensor, std float64, rng *rand.Rand) {
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64() * std)
	}
}

// Uniform fills x from U(lo, hi).
func Uniform(x *Tensor, lo, hi float64, rng *rand.Rand) {
	for i := range x.Data {
		x.Data[i] = float32(lo + (hi-lo)*rng.Float64())
	}
}

// Zeros sets x to zero.
func Zeros(x *Tensor) { x.Zero() }

// NewRand returns a PCG generator seeded with seed, the package's usual source.
func NewRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^seedMix)) }
