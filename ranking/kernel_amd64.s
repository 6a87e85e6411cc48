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
