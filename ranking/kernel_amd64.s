#include "textflag.h"

// AVX2+FMA dot products for the ranking (kernel_amd64.go). Each row's sum is formed in the
// same order by both functions — two 8-lane accumulators over alternate chunks of 8, an odd
// last chunk into the first, their sum, a fixed horizontal reduction, then the n%8 tail
// elements by scalar FMA — so dot4AVX's result for a row equals dotAVX's bit for bit, and
// neither depends on alignment (unaligned loads, no peeling).

// HSUM reduces the 8 lanes of Y to its low lane (X of the same number); T is scratch.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPS T, X, X \
	VPERMILPS $0x0e, X, T \
	VADDPS T, X, X \
	VMOVSHDUP X, T \
	VADDSS T, X, X

// func dot4AVX(a *float32, stride int, x *float32, n int, dst *float32)
TEXT ·dot4AVX(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), AX
	MOVQ stride+8(FP), BX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ dst+32(FP), DI
	LEAQ (AX)(BX*1), R8
	LEAQ (R8)(BX*1), R9
	LEAQ (R9)(BX*1), R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ DX, DX
	MOVQ CX, R11
	SHRQ $4, R11
	JZ   single4

pairs4:
	VMOVUPS     (SI)(DX*1), Y8
	VMOVUPS     32(SI)(DX*1), Y9
	VFMADD231PS (AX)(DX*1), Y8, Y0
	VFMADD231PS 32(AX)(DX*1), Y9, Y1
	VFMADD231PS (R8)(DX*1), Y8, Y2
	VFMADD231PS 32(R8)(DX*1), Y9, Y3
	VFMADD231PS (R9)(DX*1), Y8, Y4
	VFMADD231PS 32(R9)(DX*1), Y9, Y5
	VFMADD231PS (R10)(DX*1), Y8, Y6
	VFMADD231PS 32(R10)(DX*1), Y9, Y7
	ADDQ        $64, DX
	DECQ        R11
	JNZ         pairs4

single4:
	TESTQ       $8, CX
	JZ          reduce4
	VMOVUPS     (SI)(DX*1), Y8
	VFMADD231PS (AX)(DX*1), Y8, Y0
	VFMADD231PS (R8)(DX*1), Y8, Y2
	VFMADD231PS (R9)(DX*1), Y8, Y4
	VFMADD231PS (R10)(DX*1), Y8, Y6
	ADDQ        $32, DX

reduce4:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	HSUM(Y0, X0, X1)
	HSUM(Y2, X2, X3)
	HSUM(Y4, X4, X5)
	HSUM(Y6, X6, X7)
	ANDQ $7, CX
	JZ   done4

tail4:
	VMOVSS      (SI)(DX*1), X8
	VFMADD231SS (AX)(DX*1), X8, X0
	VFMADD231SS (R8)(DX*1), X8, X2
	VFMADD231SS (R9)(DX*1), X8, X4
	VFMADD231SS (R10)(DX*1), X8, X6
	ADDQ        $4, DX
	DECQ        CX
	JNZ         tail4

done4:
	VMOVSS X0, (DI)
	VMOVSS X2, 4(DI)
	VMOVSS X4, 8(DI)
	VMOVSS X6, 12(DI)
	VZEROUPPER
	RET

// func dotAVX(a, x *float32, n int) float32
TEXT ·dotAVX(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), AX
	MOVQ   x+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ   DX, DX
	MOVQ   CX, R11
	SHRQ   $4, R11
	JZ     single1

pairs1:
	VMOVUPS     (SI)(DX*1), Y8
	VMOVUPS     32(SI)(DX*1), Y9
	VFMADD231PS (AX)(DX*1), Y8, Y0
	VFMADD231PS 32(AX)(DX*1), Y9, Y1
	ADDQ        $64, DX
	DECQ        R11
	JNZ         pairs1

single1:
	TESTQ       $8, CX
	JZ          reduce1
	VMOVUPS     (SI)(DX*1), Y8
	VFMADD231PS (AX)(DX*1), Y8, Y0
	ADDQ        $32, DX

reduce1:
	VADDPS Y1, Y0, Y0
	HSUM(Y0, X0, X1)
	ANDQ   $7, CX
	JZ     done1

tail1:
	VMOVSS      (SI)(DX*1), X8
	VFMADD231SS (AX)(DX*1), X8, X0
	ADDQ        $4, DX
	DECQ        CX
	JNZ         tail1

done1:
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func matvecTAVX(a *float32, x *float32, dim int, dst *float32, stride int)
// For a block stored column-major (element k of row r at a + k·stride + 4r bytes), writes
// dst[r] = Σ_k x[k]·row_r[k] for the 64 rows r = 0..63: each lane is one row, summed by one
// FMA per k in order k = 0, 1, ..., dim-1 (dotStridedAVX's order), with no horizontal
// reduction; eight accumulators keep both FMA ports busy.
TEXT ·matvecTAVX(SB), NOSPLIT, $0-40
	MOVQ   a+0(FP), AX
	MOVQ   x+8(FP), SI
	MOVQ   dim+16(FP), CX
	MOVQ   dst+24(FP), DI
	MOVQ   stride+32(FP), BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ  CX, CX
	JZ     storeT

loopT:
	VBROADCASTSS (SI), Y8
	VFMADD231PS  (AX), Y8, Y0
	VFMADD231PS  32(AX), Y8, Y1
	VFMADD231PS  64(AX), Y8, Y2
	VFMADD231PS  96(AX), Y8, Y3
	VFMADD231PS  128(AX), Y8, Y4
	VFMADD231PS  160(AX), Y8, Y5
	VFMADD231PS  192(AX), Y8, Y6
	VFMADD231PS  224(AX), Y8, Y7
	ADDQ         BX, AX
	ADDQ         $4, SI
	DECQ         CX
	JNZ          loopT

storeT:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	VZEROUPPER
	RET

// func dotStridedAVX(a *float32, stride int, x *float32, n int) float32
// Σ_k a[k·stride bytes]·x[k], one FMA per k in order: a column-major row as matvecTAVX sums it.
TEXT ·dotStridedAVX(SB), NOSPLIT, $0-36
	MOVQ   a+0(FP), AX
	MOVQ   stride+8(FP), BX
	MOVQ   x+16(FP), SI
	MOVQ   n+24(FP), CX
	VXORPS X0, X0, X0
	TESTQ  CX, CX
	JZ     doneS

loopS:
	VMOVSS      (SI), X8
	VFMADD231SS (AX), X8, X0
	ADDQ        BX, AX
	ADDQ        $4, SI
	DECQ        CX
	JNZ         loopS

doneS:
	VMOVSS X0, ret+32(FP)
	RET

// func matvecTAVX512(a *float32, x *float32, dim int, dst *float32, stride int)
// matvecTAVX with 16-lane registers: 128 rows per pass, the same per-lane FMA order, so the
// same results bit for bit.
TEXT ·matvecTAVX512(SB), NOSPLIT, $0-40
	MOVQ    a+0(FP), AX
	MOVQ    x+8(FP), SI
	MOVQ    dim+16(FP), CX
	MOVQ    dst+24(FP), DI
	MOVQ    stride+32(FP), BX
	VPXORD  Z0, Z0, Z0
	VPXORD  Z1, Z1, Z1
	VPXORD  Z2, Z2, Z2
	VPXORD  Z3, Z3, Z3
	VPXORD  Z4, Z4, Z4
	VPXORD  Z5, Z5, Z5
	VPXORD  Z6, Z6, Z6
	VPXORD  Z7, Z7, Z7
	TESTQ   CX, CX
	JZ      storeZ

loopZ:
	VBROADCASTSS (SI), Z8
	VFMADD231PS  (AX), Z8, Z0
	VFMADD231PS  64(AX), Z8, Z1
	VFMADD231PS  128(AX), Z8, Z2
	VFMADD231PS  192(AX), Z8, Z3
	VFMADD231PS  256(AX), Z8, Z4
	VFMADD231PS  320(AX), Z8, Z5
	VFMADD231PS  384(AX), Z8, Z6
	VFMADD231PS  448(AX), Z8, Z7
	ADDQ         BX, AX
	ADDQ         $4, SI
	DECQ         CX
	JNZ          loopZ

storeZ:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VZEROUPPER
	RET

// func firstAboveAVX(s *float32, n int, bar float32) int
// The first i < n with !(s[i] <= bar) (above bar, or NaN), or n: eight comparisons at a time.
TEXT ·firstAboveAVX(SB), NOSPLIT, $0-32
	MOVQ         s+0(FP), AX
	MOVQ         n+8(FP), CX
	VBROADCASTSS bar+16(FP), Y1
	XORQ         DX, DX

loopF:
	LEAQ      8(DX), R8
	CMPQ      R8, CX
	JGT       tailF
	VMOVUPS   (AX)(DX*4), Y0
	VCMPPS    $6, Y1, Y0, Y2
	VMOVMSKPS Y2, BX
	TESTL     BX, BX
	JNZ       foundF
	MOVQ      R8, DX
	JMP       loopF

foundF:
	BSFL  BX, BX
	ADDQ  BX, DX
	MOVQ  DX, ret+24(FP)
	VZEROUPPER
	RET

tailF:
	CMPQ    DX, CX
	JGE     endF
	VMOVSS  (AX)(DX*4), X0
	VUCOMISS X1, X0
	JA      doneF
	JP      doneF
	INCQ    DX
	JMP     tailF

doneF:
	MOVQ  DX, ret+24(FP)
	VZEROUPPER
	RET

endF:
	MOVQ  CX, ret+24(FP)
	VZEROUPPER
	RET
