package featurestore

import (
	"fmt"
	"math"
)

// Rows are stored as little-endian float32 blobs, deltas travel as little-endian float64
// blobs: the layout of Redis Lua's struct formats '<f' and '<d'.

// appendF32 appends v to dst as a little-endian float32 blob.
func appendF32(dst []byte, v []float32) []byte {
	for _, f := range v {
		u := math.Float32bits(f)
		dst = append(dst, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return dst
}

// appendF64 appends v to dst as a little-endian float64 blob.
func appendF64(dst []byte, v []float64) []byte {
	for _, f := range v {
		u := math.Float64bits(f)
		dst = append(dst, byte(u), byte(u>>8), byte(u>>16), byte(u>>24),
			byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
	}
	return dst
}

// decodeF32 decodes a little-endian float32 blob into a new slice; an empty blob gives an
// empty, non-nil row.
func decodeF32(s string) ([]float32, error) {
	if len(s)%4 != 0 {
		return nil, errCorrupt(len(s))
	}
	return decodeF32Into(make([]float32, len(s)/4), s), nil
}

func errCorrupt(n int) error {
	return fmt.Errorf("corrupt row: %d bytes is not a whole number of float32s", n)
}

// decodeF32Into decodes the blob s, whose length is a multiple of 4, into v, which has
// room for it, and returns v.
func decodeF32Into(v []float32, s string) []float32 {
	for i := range v {
		j := 4 * i
		v[i] = math.Float32frombits(uint32(s[j]) | uint32(s[j+1])<<8 | uint32(s[j+2])<<16 | uint32(s[j+3])<<24)
	}
	return v
}
