//go:build !amd64

package ranking

var useAVX, useAVX512 = false, false

func kernelModes() []int { return []int{0} }

func setKernels(mode int) int { return 0 }

func dot4AVX(a *float32, stride int, x *float32, n int, dst *float32) { panic("no AVX") }

func dotAVX(a, x *float32, n int) float32 { panic("no AVX") }

func matvecTAVX(a *float32, x *float32, dim int, dst *float32, stride int) { panic("no AVX") }

func dotStridedAVX(a *float32, stride int, x *float32, n int) float32 { panic("no AVX") }

func matvecTAVX512(a *float32, x *float32, dim int, dst *float32, stride int) { panic("no AVX") }

func firstAboveAVX(s *float32, n int, bar float32) int { panic("no AVX") }
